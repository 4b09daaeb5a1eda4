"""The Slack and Telegram doors of the gateway: the platform-level parts, free of Rasa and settings.

Why here and not in Rasa's connectors: Rasa 3.6's Telegram connector does not authenticate
webhooks and answers 500 to updates it does not know; its Slack connector runs retries and the
@-mention twin as second turns (see ARCHITECTURE.md). Each module is a pure function or a small
class taking plain arguments, so routes, settings and the app can wire them (README_WIRING.md):

- :mod:`.slack`, :mod:`.slack_render`: request signatures, Events API and interactivity bodies,
  Block Kit messages;
- :mod:`.telegram`: the webhook secret, updates, HTML messages with inline keyboards;
- :mod:`.bot_messages`: Rasa's output dicts → typed messages, text splitting;
- :mod:`.dedupe`: "seen this event?" claims and the server-side map of Telegram button ids;
- :mod:`.lanes`: one turn at a time per conversation, in arrival order;
- :mod:`.outbound`: the Web API / Bot API clients (429 honoured, never a blind retry);
- :mod:`.conversation_ids`: conversation ids derived on the server, never a raw platform id.
"""
