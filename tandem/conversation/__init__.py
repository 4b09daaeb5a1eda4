"""One model of a conversation, read from Rasa's tracker events, without Rasa.

- :mod:`.turns`: events → :class:`ConversationTurn` (user / bot / agent, text, buttons, image,
  custom, timestamp, intent and confidence, channel, correlation id), the payloads the bot offers;
- :mod:`.walks`: the bot's decisions (previous bot action, consecutive fallbacks);
- :mod:`.transcript`: the transcript and summary of a handoff ticket;
- :mod:`.outcome`: the outcome of a session;
- :mod:`.history` (imported on its own: it builds the LLM's turns): the fallback chain's history.

Used by the actions (rasa-sdk's ``tracker.events``) and the gateway (Rasa's tracker JSON): both
are lists of plain dicts.
"""

from tandem.conversation.outcome import SessionOutcome, last_session, session_outcome
from tandem.conversation.transcript import TRANSCRIPT_TURNS, handoff_summary, topics, transcript
from tandem.conversation.turns import (
    INPUT_CHANNELS,
    MAX_BUTTONS,
    Button,
    ConversationTurn,
    Role,
    channel_name,
    offered_payloads,
    parse_buttons,
    parse_custom,
    turns,
)
from tandem.conversation.walks import (
    FALLBACK_ACTION,
    HANDOFF_ACTION,
    consecutive_fallbacks,
    decisions_per_user_turn,
    is_bot_decision,
    previous_bot_action,
)

__all__ = [
    "FALLBACK_ACTION",
    "HANDOFF_ACTION",
    "INPUT_CHANNELS",
    "MAX_BUTTONS",
    "TRANSCRIPT_TURNS",
    "Button",
    "ConversationTurn",
    "Role",
    "SessionOutcome",
    "channel_name",
    "consecutive_fallbacks",
    "decisions_per_user_turn",
    "handoff_summary",
    "is_bot_decision",
    "last_session",
    "offered_payloads",
    "parse_buttons",
    "parse_custom",
    "previous_bot_action",
    "session_outcome",
    "topics",
    "transcript",
    "turns",
]
