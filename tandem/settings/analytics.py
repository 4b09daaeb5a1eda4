"""Analytics: the event stream's broker, the consumer's metrics, the KPI definitions' knobs,
and the process exporter."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from tandem.settings.base import SettingsPart


class AnalyticsSettings(SettingsPart):
    """Where Rasa's events arrive (RabbitMQ) and how sessions are judged.

    ``EVENT_BROKER_URL`` unset: no event stream (the embedded default); the KPI report then reads
    the tracker store (``TRACKER_DB_URL``). ``ANALYTICS_SESSION_IDLE_MINUTES`` is when a quiet
    session counts as ended (the domain's ``session_expiration_time``, 60 minutes).
    """

    event_broker_url: SecretStr | None = Field(default=None, alias="EVENT_BROKER_URL")
    event_broker_queue: str = Field(
        default="tandem-analytics", min_length=1, max_length=200, alias="EVENT_BROKER_QUEUE"
    )
    tracker_db_url: SecretStr | None = Field(default=None, alias="TRACKER_DB_URL")
    analytics_metrics_port: int | None = Field(default=None, ge=1, le=65535, alias="ANALYTICS_METRICS_PORT")
    # Loopback by default; 0.0.0.0 only inside a container whose port is not published (compose).
    analytics_metrics_host: str = Field(default="127.0.0.1", min_length=1, alias="ANALYTICS_METRICS_HOST")
    analytics_metrics_token: SecretStr | None = Field(default=None, alias="ANALYTICS_METRICS_TOKEN")
    analytics_kpi_window_hours: float = Field(default=24.0, gt=0, le=24 * 90, alias="ANALYTICS_KPI_WINDOW_HOURS")
    analytics_session_idle_minutes: float = Field(
        default=60.0, gt=0, le=24 * 60, alias="ANALYTICS_SESSION_IDLE_MINUTES"
    )
    analytics_prefetch: int = Field(default=200, ge=1, le=10000, alias="ANALYTICS_PREFETCH")

    @field_validator("event_broker_url", "tracker_db_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value


class ProcessExporterSettings(SettingsPart):
    """The exporter of other processes' CPU and memory (read from /proc), for bearers of its token."""

    process_metrics_port: int = Field(default=9108, ge=1, le=65535, alias="PROCESS_METRICS_PORT")
    process_metrics_token: SecretStr | None = Field(default=None, alias="PROCESS_METRICS_TOKEN")
