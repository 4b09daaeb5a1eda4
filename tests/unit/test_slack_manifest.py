"""docs/slack-app-manifest.yml: a Slack app manifest whose URLs are the gateway's Slack routes, with
the events and the scopes the Slack door needs (and nothing more)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.routing import APIRoute

from tandem.gateway import create_app
from tandem.settings import load_gateway_settings

MANIFEST = Path(__file__).resolve().parents[2] / "docs" / "slack-app-manifest.yml"
EVENTS_PATH = "/channels/slack/events"
INTERACTIVITY_PATH = "/channels/slack/interactivity"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def slack_post_routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The POST paths of a gateway built with Slack on (no server started, nothing contacted)."""
    settings = load_gateway_settings(
        _env_file=None,
        DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('manifest') / 'gateway.db'}",
        REDIS_URL=None,
        GATEWAY_SECRET="manifest-test-secret-" + "q7" * 16,
        RASA_API_TOKEN="manifest-test-rasa-token",
        SLACK_SIGNING_SECRET="manifest-test-signing-secret",
        SLACK_BOT_TOKEN="xoxb-manifest-test",
    )
    app = create_app(settings)
    return {
        route.path
        for route in app.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or ()) and route.path.startswith("/channels/slack/")
    }


def _url(value: Any) -> tuple[str, str]:
    assert isinstance(value, str)
    parts = urlsplit(value)
    assert parts.scheme == "https", value  # Slack only calls HTTPS request URLs
    assert parts.hostname == "your-domain", value  # the placeholder docs/channels.md says to replace
    assert not parts.query and not parts.fragment, value
    return parts.hostname, parts.path


def test_the_request_urls_are_the_gateways_slack_routes(manifest: dict[str, Any], slack_post_routes: set[str]) -> None:
    settings = manifest["settings"]
    _, events_path = _url(settings["event_subscriptions"]["request_url"])
    _, interactivity_path = _url(settings["interactivity"]["request_url"])
    assert (events_path, interactivity_path) == (EVENTS_PATH, INTERACTIVITY_PATH)
    assert {events_path, interactivity_path} == slack_post_routes
    assert settings["interactivity"]["is_enabled"] is True


def test_http_delivery_not_socket_mode(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False  # the gateway receives HTTP requests
    assert settings["org_deploy_enabled"] is False


def test_events_dms_and_mentions_only(manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]
    assert sorted(events["bot_events"]) == ["app_mention", "message.im"]
    assert "user_events" not in events  # the app acts as its bot, never on a person's behalf


def test_scopes_are_the_ones_the_door_uses(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert sorted(scopes["bot"]) == sorted(["app_mentions:read", "im:history", "chat:write"])
    assert "user" not in scopes


def test_people_can_dm_the_bot(manifest: dict[str, Any]) -> None:
    features = manifest["features"]
    assert features["bot_user"]["display_name"]
    assert features["app_home"]["messages_tab_enabled"] is True
    assert features["app_home"]["messages_tab_read_only_enabled"] is False


def test_display_information_within_slacks_limits(manifest: dict[str, Any]) -> None:
    info = manifest["display_information"]
    assert 0 < len(info["name"]) <= 35
    assert len(info.get("description", "")) <= 140
    assert "long_description" not in info or 174 <= len(info["long_description"]) <= 4000
