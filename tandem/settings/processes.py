"""What each process loads: only the parts it uses, so one process's checks never stop another.

- the action server (actions/), :func:`load_action_settings`: database, Redis, business, brand,
  LLM, fallback, input, turn, action server, log, tracing;
- the gateway (tandem/gateway), :func:`load_gateway_settings`: gateway (with the turn), database
  (readiness, the handoff desk), Redis, input, brand, log, Slack, Telegram, handoff, Chatwoot,
  tracing;
- the command line (tandem/cli.py), :func:`load_cli_settings`: database, Redis, business, brand,
  log (migrations read :class:`DatabaseSettings` alone).

Keyword overrides use the environment variables' names (``DATABASE_URL="sqlite:///x.db"``); each
goes to the parts that read it, and a name no part of the process reads is an error (a typo in a
test must not pass silently). ``_env_file=None`` ignores a ``.env``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self, TypeVar, get_type_hints

from tandem.settings.analytics import AnalyticsSettings
from tandem.settings.base import SettingsPart
from tandem.settings.business import BrandSettings, BusinessSettings
from tandem.settings.channels import SlackSettings, TelegramSettings
from tandem.settings.desk import ChatwootSettings, HandoffSettings
from tandem.settings.infrastructure import DatabaseSettings, LogSettings, RedisSettings
from tandem.settings.llm import FallbackSettings, LlmSettings
from tandem.settings.servers import ActionServerSettings, GatewaySettings, InputSettings, TurnSettings
from tandem.settings.tracing import TracingSettings

# What a turn needs besides the LLM call (NLU, actions, database) within RASA_TIMEOUT_SECONDS.
LLM_TURN_MARGIN_SECONDS = 5.0

P = TypeVar("P", bound=SettingsPart)


class _Overrides:
    """The keyword overrides of one load, handed out to the parts that read them."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._env_file = values.pop("_env_file", ...)
        self._values = values
        self._used: set[str] = set()

    def load(self, part: type[P]) -> P:
        names = part.environment_names()
        mine = {key: value for key, value in self._values.items() if key in names}
        self._used.update(mine)
        if self._env_file is not ...:
            mine["_env_file"] = self._env_file
        return part(**mine)

    def check_all_used(self, process: str) -> None:
        unknown = sorted(set(self._values) - self._used)
        if unknown:
            raise TypeError(f"the {process} reads no setting named {', '.join(unknown)}")


class _Composite:
    """A process's parts; :meth:`updated` copies it with some fields changed (tests, benchmarks)."""

    def updated(self, **fields: Any) -> Self:
        """A copy with ``fields`` (by field name, e.g. ``search_max_options=1``) changed in their parts."""
        changes: dict[str, dict[str, Any]] = {}
        for name, value in fields.items():
            owner = next(
                (
                    p.name
                    for p in dataclasses.fields(self)  # type: ignore[arg-type]
                    if name in type(getattr(self, p.name)).model_fields
                ),
                None,
            )
            if owner is None:
                raise TypeError(f"no part of {type(self).__name__} has a field {name!r}")
            changes.setdefault(owner, {})[name] = value
        parts = {owner: getattr(self, owner).model_copy(update=update) for owner, update in changes.items()}
        return dataclasses.replace(self, **parts)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class ActionSettings(_Composite):
    """The action server's settings (the toolbox, the fallback chain)."""

    database: DatabaseSettings
    redis: RedisSettings
    business: BusinessSettings
    brand: BrandSettings
    llm: LlmSettings
    fallback: FallbackSettings
    input: InputSettings
    turn: TurnSettings
    server: ActionServerSettings
    log: LogSettings
    tracing: TracingSettings

    def __post_init__(self) -> None:
        # Only when both are set in this environment: the defaults (15 + 5 < 30) hold by construction.
        both = "llm_total_timeout_seconds" in self.llm.model_fields_set and (
            "rasa_timeout_seconds" in self.turn.model_fields_set
        )
        if both and self.llm.llm_total_timeout_seconds + LLM_TURN_MARGIN_SECONDS >= self.turn.rasa_timeout_seconds:
            raise ValueError(
                f"LLM_TOTAL_TIMEOUT_SECONDS + {LLM_TURN_MARGIN_SECONDS:g} s must stay under RASA_TIMEOUT_SECONDS: "
                "a turn that outlives the gateway's timeout gets a 504 while Rasa still finishes it"
            )


@dataclass(frozen=True, slots=True)
class GatewayAppSettings(_Composite):
    """The gateway's settings."""

    gateway: GatewaySettings
    database: DatabaseSettings
    redis: RedisSettings
    input: InputSettings
    brand: BrandSettings
    log: LogSettings
    slack: SlackSettings
    telegram: TelegramSettings
    handoff: HandoffSettings
    chatwoot: ChatwootSettings
    tracing: TracingSettings

    def __post_init__(self) -> None:
        secret = self.gateway.gateway_secret.get_secret_value() if self.gateway.gateway_secret else ""
        if (self.slack.enabled or self.telegram.enabled) and not secret:
            raise ValueError(
                "Slack and Telegram conversation ids are keyed hashes: set GATEWAY_SECRET when a channel is on"
            )
        if self.handoff.helpdesk == "chatwoot" and not self.chatwoot.configured:
            raise ValueError(
                "HELPDESK=chatwoot needs CHATWOOT_BASE_URL, CHATWOOT_API_TOKEN, CHATWOOT_ACCOUNT_ID, "
                "CHATWOOT_INBOX_ID and CHATWOOT_WEBHOOK_SECRET (16+ characters)"
            )


@dataclass(frozen=True, slots=True)
class CliSettings(_Composite):
    """The command line's settings (migrations, seeding, expiring holds)."""

    database: DatabaseSettings
    redis: RedisSettings
    business: BusinessSettings
    brand: BrandSettings
    log: LogSettings
    analytics: AnalyticsSettings


C = TypeVar("C", bound=_Composite)


def _load(composite: type[C], process: str, overrides: dict[str, Any]) -> C:
    """Each part of ``composite`` from the environment and the overrides it reads."""
    given = _Overrides(overrides)
    hints = get_type_hints(composite)
    parts = {f.name: given.load(hints[f.name]) for f in dataclasses.fields(composite)}  # type: ignore[arg-type]
    given.check_all_used(process)
    return composite(**parts)


def load_action_settings(**overrides: Any) -> ActionSettings:
    """The action server's settings from the environment; keyword overrides win (tests)."""
    return _load(ActionSettings, "action server", overrides)


def load_gateway_settings(**overrides: Any) -> GatewayAppSettings:
    """The gateway's settings from the environment; keyword overrides win (tests)."""
    return _load(GatewayAppSettings, "gateway", overrides)


def load_cli_settings(**overrides: Any) -> CliSettings:
    """The command line's settings from the environment; keyword overrides win (tests)."""
    return _load(CliSettings, "command line", overrides)
