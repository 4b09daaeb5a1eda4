"""Server-derived conversation ids, and per-conversation ordering of background turns."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re

import pytest

from tandem.gateway.channels.conversation_ids import slack_conversation_id, telegram_conversation_id
from tandem.gateway.channels.lanes import ConversationLanes, Job

SECRET = b"conversation-secret-0123456789abcdef"


def test_slack_ids_are_keyed_hashes_of_team_channel_and_user() -> None:
    cid = slack_conversation_id(SECRET, team="T0TEAM001", channel="D0DM00001", user="U0PERSON1")
    assert re.fullmatch(r"slack-[0-9a-f]{32}", cid)
    expected = hmac.new(SECRET, b"slack:T0TEAM001:D0DM00001:U0PERSON1", hashlib.sha256).hexdigest()[:32]
    assert cid == "slack-" + expected
    assert not any(part in cid for part in ("T0TEAM001", "D0DM00001", "U0PERSON1"))
    assert cid == slack_conversation_id(SECRET, team="T0TEAM001", channel="D0DM00001", user="U0PERSON1")  # stable
    others = {
        slack_conversation_id(SECRET, team="T0TEAM002", channel="D0DM00001", user="U0PERSON1"),
        slack_conversation_id(SECRET, team="T0TEAM001", channel="C0GENERAL", user="U0PERSON1"),
        slack_conversation_id(SECRET, team="T0TEAM001", channel="D0DM00001", user="U0PERSON2"),
        slack_conversation_id(
            b"another-secret-0123456789abcdef", team="T0TEAM001", channel="D0DM00001", user="U0PERSON1"
        ),
    }
    assert cid not in others and len(others) == 4


def test_telegram_ids_are_keyed_hashes_of_chat_and_sender() -> None:
    cid = telegram_conversation_id(SECRET, chat_id=987654321, from_id=987654321)
    assert re.fullmatch(r"telegram-[0-9a-f]{32}", cid)
    assert "987654321" not in cid
    expected = hmac.new(SECRET, b"telegram:987654321:987654321", hashlib.sha256).hexdigest()[:32]
    assert cid == "telegram-" + expected
    assert cid != telegram_conversation_id(SECRET, chat_id=-100123, from_id=987654321)
    assert cid != telegram_conversation_id(SECRET, chat_id=987654321, from_id=1)


def test_ambiguous_parts_and_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        slack_conversation_id(SECRET, team="T1:C2", channel="C3", user="U4")  # would collide with T1/C2:C3
    with pytest.raises(ValueError):
        slack_conversation_id(SECRET, team="", channel="C3", user="U4")
    with pytest.raises(ValueError):
        slack_conversation_id(b"short", team="T1", channel="C3", user="U4")
    with pytest.raises(ValueError):
        telegram_conversation_id(SECRET, chat_id=True, from_id=1)


async def test_one_conversations_jobs_run_one_at_a_time_in_order() -> None:
    lanes = ConversationLanes()
    log: list[str] = []
    running = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}

    def job(key: str, n: int, delay: float) -> Job:
        async def run() -> None:
            running[key] += 1
            peak[key] = max(peak[key], running[key])
            await asyncio.sleep(delay)
            log.append(f"{key}{n}")
            running[key] -= 1

        return run

    for n, delay in enumerate([0.05, 0.0, 0.02, 0.0]):
        assert lanes.submit("a", job("a", n, delay))
    assert lanes.submit("b", job("b", 0, 0.0))
    assert await lanes.drain(5)
    assert [e for e in log if e.startswith("a")] == ["a0", "a1", "a2", "a3"]
    assert peak == {"a": 1, "b": 1}
    assert log.index("b0") < log.index("a0")  # another conversation did not wait for "a"
    assert lanes.busy_keys == 0


async def test_a_failing_job_does_not_stop_its_lane() -> None:
    lanes = ConversationLanes()
    done: list[int] = []

    async def boom() -> None:
        raise RuntimeError("the turn failed")

    async def ok() -> None:
        done.append(1)

    lanes.submit("a", boom)
    lanes.submit("a", ok)
    assert await lanes.drain(5)
    assert done == [1]


async def test_lanes_are_bounded_and_close() -> None:
    lanes = ConversationLanes(max_pending_per_key=2, max_busy_keys=1)
    release = asyncio.Event()

    async def wait() -> None:
        await release.wait()

    assert lanes.submit("a", wait)
    assert lanes.submit("a", wait)
    assert not lanes.submit("a", wait)  # this conversation's queue is full
    assert not lanes.submit("b", wait)  # no room for another busy conversation
    await lanes.aclose(timeout=0.05)  # jobs still blocked: cancelled
    assert lanes.busy_keys == 0
    assert not lanes.submit("a", wait)  # closed
