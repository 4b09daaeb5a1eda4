"""Configuration, read only from the environment (and an optional ``.env``), split by concern.

Parts: :class:`DatabaseSettings`, :class:`RedisSettings`, :class:`LogSettings`
(:mod:`.infrastructure`); :class:`AnalyticsSettings`, :class:`ProcessExporterSettings`
(:mod:`.analytics`); :class:`BusinessSettings`, :class:`BrandSettings` (:mod:`.business`);
:class:`LlmSettings`, :class:`FallbackSettings` (:mod:`.llm`); :class:`InputSettings`,
:class:`TurnSettings`, :class:`ActionServerSettings`, :class:`GatewaySettings` (:mod:`.servers`);
:class:`TracingSettings` (:mod:`.tracing`).
Each process loads its parts with one loader (:mod:`.processes`). Nothing here runs at import time.
"""

from tandem.settings.analytics import AnalyticsSettings, ProcessExporterSettings
from tandem.settings.business import BrandSettings, BusinessSettings
from tandem.settings.channels import SlackSettings, TelegramSettings
from tandem.settings.desk import ChatwootSettings, HandoffSettings
from tandem.settings.infrastructure import DatabaseSettings, LogSettings, RedisSettings
from tandem.settings.llm import FallbackSettings, LlmSettings
from tandem.settings.processes import (
    LLM_TURN_MARGIN_SECONDS,
    ActionSettings,
    CliSettings,
    GatewayAppSettings,
    load_action_settings,
    load_cli_settings,
    load_gateway_settings,
)
from tandem.settings.servers import (
    DEFAULT_MAX_MESSAGE_CHARS,
    MAX_MESSAGE_CHARS_CEILING,
    ActionServerSettings,
    GatewaySettings,
    InputSettings,
    TurnSettings,
)
from tandem.settings.tracing import TracingSettings

__all__ = [
    "DEFAULT_MAX_MESSAGE_CHARS",
    "LLM_TURN_MARGIN_SECONDS",
    "MAX_MESSAGE_CHARS_CEILING",
    "ActionServerSettings",
    "ActionSettings",
    "AnalyticsSettings",
    "BrandSettings",
    "BusinessSettings",
    "ChatwootSettings",
    "CliSettings",
    "DatabaseSettings",
    "FallbackSettings",
    "GatewayAppSettings",
    "GatewaySettings",
    "HandoffSettings",
    "InputSettings",
    "LlmSettings",
    "LogSettings",
    "ProcessExporterSettings",
    "RedisSettings",
    "SlackSettings",
    "TelegramSettings",
    "TracingSettings",
    "TurnSettings",
    "load_action_settings",
    "load_cli_settings",
    "load_gateway_settings",
]
