"""Health, readiness, metrics, security headers, CORS, the OpenAPI description and the logs."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tandem.settings import load_gateway_settings

from .conftest import REDIS_URL, say, start_session
from .fakes import FakeRasa, ServerThread


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_checks_every_dependency(settings_for: Any, client_for: Any, fake: FakeRasa) -> None:
    async with client_for(settings_for(REDIS_URL=REDIS_URL)) as client:
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ready"
        assert set(body["checks"]) == {"rasa", "action_server", "database", "redis"}
        assert all(check["ok"] for check in body["checks"].values())


async def test_readyz_reflects_a_stopped_action_server(settings_for: Any, client_for: Any, fake: FakeRasa) -> None:
    actions = ServerThread(FakeRasa().app()).start()
    async with client_for(settings_for(ACTION_SERVER_URL=f"{actions.url}/webhook")) as client:
        assert (await client.get("/readyz")).status_code == 200
        actions.stop()
        response = await client.get("/readyz")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert response.json()["status"] == "not_ready"
        assert checks["action_server"] == {"ok": False, "latency_ms": None, "reason": "unreachable"} or (
            checks["action_server"]["ok"] is False
        )
        assert checks["rasa"]["ok"] and checks["database"]["ok"]


async def test_readyz_reflects_a_stopped_rasa_redis_and_database(
    settings_for: Any, client_for: Any, closed_port_url: str
) -> None:
    port = closed_port_url.rsplit(":", 1)[1]
    settings = settings_for(
        RASA_URL=closed_port_url,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        REDIS_TIMEOUT_SECONDS=0.5,
        DATABASE_URL=f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing",
        DB_CONNECT_TIMEOUT_SECONDS=1,
    )
    async with client_for(settings) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert not checks["rasa"]["ok"] and not checks["redis"]["ok"] and not checks["database"]["ok"]
        assert checks["action_server"]["ok"]
        assert "127.0.0.1" not in response.text  # short reasons, no connection details


async def test_readyz_needs_a_loaded_model(settings_for: Any, client_for: Any, fake: FakeRasa) -> None:
    async with client_for(settings_for(RASA_API_TOKEN="wrong-token")) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503 and response.json()["checks"]["rasa"]["reason"] == "HTTP 401"


async def test_metrics(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    await say(client, text="hello")
    await say(client, text="x" * 1001)
    text = (await client.get("/metrics")).text
    assert 'tandem_gateway_requests_total{method="POST",route="/api/v1/messages",status="200"} 1.0' in text
    assert 'tandem_gateway_rejections_total{reason="message_too_long"} 1.0' in text
    assert "tandem_gateway_request_seconds_bucket" in text and "tandem_gateway_turn_seconds_count 1.0" in text
    assert "tandem_gateway_sessions_created_total 1.0" in text


async def test_metrics_token(settings_for: Any, client_for: Any) -> None:
    async with client_for(settings_for(GATEWAY_METRICS_TOKEN="scrape-me")) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).status_code == 200


async def test_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "tandem-widget.js" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text  # no inline script or style
    script = await client.get("/widget/tandem-widget.js")
    assert script.status_code == 200 and script.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script.text, sink
    api = await client.post("/api/v1/session", json={})
    assert api.headers["Cache-Control"] == "no-store" and api.headers["Content-Security-Policy"].startswith(
        "default-src 'none'"
    )
    missing = await client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await client.get("/docs")).status_code == 404  # Swagger UI would need inline script


async def test_cors_only_for_configured_origins(settings_for: Any, client_for: Any, fake: FakeRasa) -> None:
    settings = settings_for(GATEWAY_ALLOWED_ORIGINS="https://www.andaman-air.example, https://m.andaman-air.example/")
    assert settings.gateway.gateway_allowed_origin_list == [
        "https://www.andaman-air.example",
        "https://m.andaman-air.example",
    ]
    async with client_for(settings) as client:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        ok = await client.options(
            "/api/v1/messages", headers={"Origin": "https://www.andaman-air.example", **preflight}
        )
        assert ok.headers["access-control-allow-origin"] == "https://www.andaman-air.example"
        assert ok.headers["access-control-allow-credentials"] == "true"
        bad = await client.options("/api/v1/messages", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in bad.headers
        origin = {"Origin": "https://m.andaman-air.example"}
        assert (await client.post("/api/v1/session", json={}, headers=origin)).status_code == 200
        response = await client.post("/api/v1/messages", json={"text": "hi"}, headers=origin)
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == origin["Origin"]


async def test_openapi_describes_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/api/v1/session", "/api/v1/messages", "/api/v1/history", "/healthz", "/readyz", "/metrics"} <= set(
        spec["paths"]
    )
    post = spec["paths"]["/api/v1/messages"]["post"]
    assert len(post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]) == 2
    assert {"200", "400", "401", "429", "502", "503", "504"} <= set(post["responses"])
    assert "Message" in spec["components"]["schemas"] and "ErrorOut" in spec["components"]["schemas"]


async def test_logs_are_structured_and_carry_no_message_text(
    client: httpx.AsyncClient, fake: FakeRasa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tandem.gateway")
    await start_session(client)
    secret_text = "my passport number is X1234567"
    response = await say(client, text=secret_text)
    turns = [r for r in caplog.records if getattr(r, "event", None) == "turn"]
    assert len(turns) == 1
    turn = turns[0]
    assert turn.correlation_id == response.headers["X-Correlation-Id"]  # type: ignore[attr-defined]
    assert turn.chars == len(secret_text) and turn.kind == "text" and turn.outcome == "ok"  # type: ignore[attr-defined]
    from tandem.gateway.logs import JsonFormatter

    formatted = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert secret_text not in formatted and "X1234567" not in formatted
    assert '"correlation_id"' in formatted


def test_production_refuses_an_unsafe_secret() -> None:
    for secret in (None, "", "short", "changeme" * 5, "a" * 40):
        with pytest.raises(ValueError, match="GATEWAY_SECRET"):
            load_gateway_settings(_env_file=None, GATEWAY_ENV="production", GATEWAY_SECRET=secret)
    ok = load_gateway_settings(
        _env_file=None,
        GATEWAY_ENV="production",
        GATEWAY_SECRET="Zq8#k2!vN4pL9xR7tY3wB6mC1sD5fG0h",
        GATEWAY_METRICS_TOKEN="scrape-Tq9#vL2!pX7mR4wZ8kC1",
    )
    assert ok.gateway.gateway_secret is not None
    with pytest.raises(ValueError, match="SECURE"):
        load_gateway_settings(_env_file=None, GATEWAY_COOKIE_SAMESITE="none")


async def test_development_uses_an_ephemeral_secret(
    settings_for: Any, client_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tandem.gateway")
    async with (
        client_for(settings_for(GATEWAY_SECRET=None)) as first,
        client_for(settings_for(GATEWAY_SECRET=None)) as second,
    ):
        await start_session(first)
        second.cookies = first.cookies
        assert (await second.get("/api/v1/history")).status_code == 401  # another process, another secret
    assert any("ephemeral" in r.getMessage() for r in caplog.records)
