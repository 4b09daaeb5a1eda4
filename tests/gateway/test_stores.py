"""The in-process revocation and turn stores: correct, expiring and bounded."""

from __future__ import annotations

from tandem.gateway.revocations import MemoryRevocationStore
from tandem.gateway.turns import MemoryTurnStore, TurnRecord


async def test_revocations_expire_with_the_token_and_stay_bounded() -> None:
    now = [1000.0]
    store = MemoryRevocationStore(max_entries=100, clock=lambda: now[0])
    await store.revoke("a", expires_at=1010)
    await store.revoke("b", expires_at=2000)
    await store.revoke("gone", expires_at=999)  # already expired: nothing to record
    assert await store.is_revoked("a") and await store.is_revoked("b") and not await store.is_revoked("gone")
    now[0] = 1011
    assert not await store.is_revoked("a") and await store.is_revoked("b")
    for i in range(10_000):
        await store.revoke(f"s{i}", expires_at=5000 + i)
    assert len(store) <= 100
    assert await store.is_revoked("s9999")  # the latest-expiring ones are kept


async def test_turn_claims_are_exclusive_expire_and_stay_bounded() -> None:
    now = [0.0]
    store = MemoryTurnStore(ttl_seconds=600, max_entries=50, clock=lambda: now[0])
    first = TurnRecord("fp", "t1", "pending")
    assert await store.claim("c", "id-00000001", first) is None
    assert await store.claim("c", "id-00000001", TurnRecord("fp", "t2", "pending")) == first
    assert await store.claim("other", "id-00000001", TurnRecord("fp", "t3", "pending")) is None
    done = TurnRecord("fp", "t1", "done", status=200, body={"turn_id": "t1", "messages": []})
    await store.put("c", "id-00000001", done)
    assert await store.get("c", "id-00000001") == done
    assert TurnRecord.from_json(done.to_json()) == done
    now[0] = 601
    assert await store.get("c", "id-00000001") is None
    for i in range(1000):
        await store.claim("c", f"id-{i:08d}", TurnRecord("fp", str(i), "pending"))
    assert len(store) <= 50
