"""``python -m tandem.cli telegram set-webhook URL``: what reaches Telegram (the fake Bot API over
real HTTP), the exit codes, and that neither the bot token nor the webhook secret is ever printed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tandem.channel_admin import telegram_set_webhook
from tandem.settings.channels import TelegramSettings
from tests.fakes.telegram_api import TELEGRAM_TOKEN, FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_URL = "https://bot.example/channels/telegram/webhook"
SECRET = "test-webhook-secret_0123456789abcdef"
WRONG_TOKEN = "987654321:not-the-fake-telegram-token"


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a process, in a directory without a ``.env``, with no Slack/Telegram settings but ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli", "telegram", "set-webhook", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "DEBUG", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_no_secrets(run: subprocess.CompletedProcess[str], *tokens: str) -> None:
    output = run.stdout + run.stderr
    for value in (SECRET, *tokens):
        assert value not in output
        assert value.split(":")[-1] not in output  # not even the token's secret half
    assert "Traceback" not in output


def _settings(base_url: str) -> TelegramSettings:
    """Telegram settings for in-process calls: these values win over the environment; no .env is read."""
    values: dict[str, Any] = {
        "_env_file": None,
        "TELEGRAM_API_BASE_URL": base_url,
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
    }
    return TelegramSettings(**values)


def test_set_webhook_registers_the_url_the_secret_and_the_updates(
    telegram_api: FakeTelegram, telegram_base_url: str, tmp_path: Path
) -> None:
    run = run_cli(
        WEBHOOK_URL,
        cwd=tmp_path,
        TELEGRAM_API_BASE_URL=telegram_base_url,
        TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
    )
    assert run.returncode == 0, run.stderr
    assert telegram_api.webhook == {
        "url": WEBHOOK_URL,
        "secret_token": SECRET,
        "allowed_updates": ["message", "callback_query"],
    }
    assert [(r["method"], r["token_ok"]) for r in telegram_api.requests] == [("setWebhook", True)]
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and WEBHOOK_URL in lines[0], run.stdout
    assert_no_secrets(run, TELEGRAM_TOKEN)


def test_a_platform_error_exits_1_with_telegrams_description(
    telegram_api: FakeTelegram, telegram_base_url: str, tmp_path: Path
) -> None:
    run = run_cli(
        WEBHOOK_URL,
        cwd=tmp_path,
        TELEGRAM_API_BASE_URL=telegram_base_url,
        TELEGRAM_BOT_TOKEN=WRONG_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
    )
    assert run.returncode == 1
    assert "Unauthorized" in run.stderr
    assert run.stdout == ""
    assert telegram_api.webhook is None
    assert [r["status"] for r in telegram_api.requests] == [401]
    assert_no_secrets(run, WRONG_TOKEN)


def test_not_configured_is_refused_before_anything_is_sent(
    telegram_api: FakeTelegram, telegram_base_url: str, tmp_path: Path
) -> None:
    run = run_cli(WEBHOOK_URL, cwd=tmp_path, TELEGRAM_API_BASE_URL=telegram_base_url)
    assert run.returncode == 2
    assert "Telegram is not configured" in run.stderr
    assert "TELEGRAM_BOT_TOKEN" in run.stderr and "TELEGRAM_WEBHOOK_SECRET" in run.stderr
    assert run.stdout == ""
    assert_no_secrets(run)
    assert telegram_api.requests == []


def test_half_configured_is_refused_without_echoing_the_token(
    telegram_api: FakeTelegram, telegram_base_url: str, tmp_path: Path
) -> None:
    run = run_cli(WEBHOOK_URL, cwd=tmp_path, TELEGRAM_API_BASE_URL=telegram_base_url, TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN)
    assert run.returncode == 2
    assert "half-configured" in run.stderr
    assert_no_secrets(run, TELEGRAM_TOKEN)
    assert telegram_api.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://bot.example/channels/telegram/webhook", "https://"),
        ("bot.example/channels/telegram/webhook", "https://"),
        ("https:///channels/telegram/webhook", "no host"),
        ("https://bot.example:8080/channels/telegram/webhook", "ports 80, 88, 443, 8443"),
    ],
)
def test_a_url_telegram_would_not_accept_is_refused(
    url: str, reason: str, telegram_api: FakeTelegram, telegram_base_url: str, tmp_path: Path
) -> None:
    settings = _settings(telegram_base_url)
    out, err = io.StringIO(), io.StringIO()
    assert telegram_set_webhook(url, settings=settings, stdout=out, stderr=err) == 2
    assert reason in err.getvalue() and out.getvalue() == ""
    assert telegram_api.requests == []


def test_the_http_url_is_refused_by_the_cli(telegram_api: FakeTelegram, telegram_base_url: str, tmp_path: Path) -> None:
    run = run_cli(
        "http://bot.example/channels/telegram/webhook",
        cwd=tmp_path,
        TELEGRAM_API_BASE_URL=telegram_base_url,
        TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
    )
    assert run.returncode == 2
    assert "https://" in run.stderr and run.stdout == ""
    assert_no_secrets(run, TELEGRAM_TOKEN)
    assert telegram_api.requests == []


def test_drop_pending_updates_is_sent_along(telegram_api: FakeTelegram, telegram_base_url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = telegram_set_webhook(
        WEBHOOK_URL, drop_pending_updates=True, settings=_settings(telegram_base_url), stdout=out, stderr=err
    )
    assert code == 0, err.getvalue()
    assert telegram_api.webhook == {
        "url": WEBHOOK_URL,
        "secret_token": SECRET,
        "allowed_updates": ["message", "callback_query"],
        "drop_pending_updates": True,
    }
    assert "pending updates dropped" in out.getvalue()


def test_a_rate_limit_is_reported_not_slept_through(telegram_api: FakeTelegram, telegram_base_url: str) -> None:
    telegram_api.rate_limit(1, retry_after=7)
    out, err = io.StringIO(), io.StringIO()
    assert telegram_set_webhook(WEBHOOK_URL, settings=_settings(telegram_base_url), stdout=out, stderr=err) == 1
    assert "try again in 7 s" in err.getvalue()
    assert len(telegram_api.requests) == 1 and telegram_api.webhook is None


def test_a_slow_telegram_times_out(telegram_api: FakeTelegram, telegram_base_url: str) -> None:
    telegram_api.delay = 2.0
    out, err = io.StringIO(), io.StringIO()
    code = telegram_set_webhook(WEBHOOK_URL, settings=_settings(telegram_base_url), timeout=0.3, stdout=out, stderr=err)
    assert code == 1
    assert "timeout" in err.getvalue() and SECRET not in err.getvalue() and TELEGRAM_TOKEN not in err.getvalue()
