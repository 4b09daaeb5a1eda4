"""Code that runs inside the Rasa server (Python 3.10, rasa 3.6.21): the gateway's input channel.

Kept apart from ``tandem`` (the application, Python 3.11) and ``tandem_nlu`` (NLU components):
nothing here imports the application, and the application never imports this.
"""
