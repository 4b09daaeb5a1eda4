"""Load benchmark: the stock ``rasa init`` bot and tandem side by side in one run (issue 14).

``python -m benchmarks.load.run`` (``make bench-load``); see README.md in this folder.
"""
