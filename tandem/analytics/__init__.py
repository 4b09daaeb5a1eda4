"""Conversation analytics: what the actions record, sessions from Rasa's events, the KPI report.

- :mod:`.outcomes`: the analytics slots the actions set (task outcome, handoff reason, fallback
  decision, tool calls) and which outcomes are successes;
- :mod:`.toolcalls`: the action server's collection of an action call's tool calls;
- :mod:`.sessions`: a conversation's events → one record per Rasa session (no Rasa needed);
- :mod:`.kpi`: records → the KPI report (definitions in its docstring and the README);
- :mod:`.tracker_source`: records from Rasa's tracker store (the report without a broker);
- :mod:`.store`, :mod:`.consumer`: the event stream (RabbitMQ) → the analytics tables;
- :mod:`.collector`, :mod:`.metrics`: Prometheus metrics and the KPI gauges;
- :mod:`.commands`: ``python -m tandem.cli kpi`` and ``analytics consume|rebuild``.
"""
