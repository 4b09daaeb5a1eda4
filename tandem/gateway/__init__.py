"""The website channel's gateway: the only public entry for web traffic in front of Rasa's REST channel.

It serves the chat widget and its demo page, gives each visitor an anonymous signed session (from which
the Rasa conversation id is derived on the server), validates and rate-limits messages, forwards them to
Rasa with timeouts and returns the bot's replies in a documented JSON shape. Build it with
:func:`create_app`; nothing here does I/O at import time.
"""

from tandem.gateway.app import create_app

__all__ = ["create_app"]
