"""Traces (OpenTelemetry): where the gateway and the action server export their spans, if anywhere.

``OTEL_EXPORTER_OTLP_ENDPOINT`` unset (the embedded default): tracing is off, no tracer provider is
installed and every span is a no-op (tandem/tracing.py). Set: spans go by OTLP/HTTP (protobuf) to
``<endpoint>/v1/traces`` (a collector, Jaeger, Tempo ...). The names are OpenTelemetry's own, so a
deployment's usual values work; ``OTEL_TRACES_SAMPLER_RATIO`` is ours (the share of new traces
kept, the gateway decides; the action server follows the gateway's decision).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator

from tandem.settings.base import SettingsPart


def parse_otlp_headers(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` (values percent-encoded, as OpenTelemetry specifies) → a dict."""
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), unquote(value.strip())
        if not sep or not key or not key.isascii() or not all(c.isalnum() or c in "-_" for c in key):
            raise ValueError("OTEL_EXPORTER_OTLP_HEADERS must be key=value pairs separated by commas")
        if not value.isprintable():
            raise ValueError("OTEL_EXPORTER_OTLP_HEADERS values must be printable")
        headers[key] = value
    return headers


class TracingSettings(SettingsPart):
    """The OTLP exporter of the process's spans; off unless an endpoint is set."""

    otel_exporter_otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    # The process's own name (``tandem-gateway``, ``tandem-actions``) unless this overrides it.
    otel_service_name: str | None = Field(default=None, min_length=1, max_length=100, alias="OTEL_SERVICE_NAME")
    # Often holds an API key of the tracing vendor.
    otel_exporter_otlp_headers: SecretStr | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_HEADERS")
    otel_traces_sampler_ratio: float = Field(default=1.0, ge=0.0, le=1.0, alias="OTEL_TRACES_SAMPLER_RATIO")

    @field_validator("otel_exporter_otlp_endpoint", "otel_service_name", "otel_exporter_otlp_headers", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL (the OTLP/HTTP base, port 4318)")
        return value

    @field_validator("otel_exporter_otlp_headers")
    @classmethod
    def _headers_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_otlp_headers(value.get_secret_value())  # fail at start, not at the first export
        return value

    @property
    def enabled(self) -> bool:
        """Whether spans are exported (an endpoint is set)."""
        return self.otel_exporter_otlp_endpoint is not None

    @property
    def traces_url(self) -> str | None:
        """Where the spans are posted: the endpoint with the traces path (OTLP/HTTP's ``/v1/traces``)."""
        if self.otel_exporter_otlp_endpoint is None:
            return None
        return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"

    def headers(self) -> dict[str, str]:
        """The export request's extra headers."""
        raw = self.otel_exporter_otlp_headers
        return parse_otlp_headers(raw.get_secret_value()) if raw is not None else {}
