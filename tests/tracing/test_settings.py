"""The tracing settings part: off by default, an http(s) endpoint, headers as a secret, a ratio."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tandem.settings import TracingSettings, load_action_settings, load_gateway_settings


def test_off_by_default_and_in_both_processes() -> None:
    settings = TracingSettings(_env_file=None)  # type: ignore[call-arg]
    assert not settings.enabled and settings.traces_url is None and settings.headers() == {}
    assert settings.otel_traces_sampler_ratio == 1.0
    on = {"_env_file": None, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert load_action_settings(**on).tracing.traces_url == "http://collector:4318/v1/traces"
    assert load_gateway_settings(**on).tracing.traces_url == "http://collector:4318/v1/traces"
    assert not load_action_settings(_env_file=None, OTEL_EXPORTER_OTLP_ENDPOINT="").tracing.enabled


def test_headers_are_a_secret_and_percent_decoded() -> None:
    settings = TracingSettings(
        _env_file=None,  # type: ignore[call-arg]
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20s3cr3t, x-tenant=acme",
    )
    assert settings.headers() == {"authorization": "Bearer s3cr3t", "x-tenant": "acme"}
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    "values",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/?x=1"},
        {"OTEL_EXPORTER_OTLP_HEADERS": "no-equals-sign"},
        {"OTEL_EXPORTER_OTLP_HEADERS": "bad key=v"},
        {"OTEL_TRACES_SAMPLER_RATIO": 1.5},
        {"OTEL_TRACES_SAMPLER_RATIO": -0.1},
    ],
)
def test_bad_values_fail_at_start(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TracingSettings(_env_file=None, **values)  # type: ignore[arg-type]
