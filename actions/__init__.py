"""Rasa custom actions: the Rasa layer only.

One module per capability. An action reads slots, makes one call to the application's
toolbox (``tandem.tools``) and turns the result, or a typed error, into responses and
events. No SQL, HTTP, Redis keys or prompt text here.
"""
