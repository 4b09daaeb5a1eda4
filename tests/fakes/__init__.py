"""Fakes of external SaaS APIs (Slack's Web API, Telegram's Bot API) served over real HTTP on 127.0.0.1.

They enforce the limits the real platforms enforce and answer errors in the platforms' own shapes,
so code that passes against them is not merely "code that talks to a fake". They run with
``tests.gateway.fakes.ServerThread`` (uvicorn in a daemon thread on a free port), the one
mechanism the tests use for fake servers.
"""
