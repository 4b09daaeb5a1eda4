"""Business services: pure, synchronous functions over a Session, one module per capability.

They take everything explicitly (session, settings, ``now``, limiter), raise :mod:`tandem.errors`
and return frozen dataclasses; money is Decimal. No Rasa imports here.
"""
