"""The Store contract for what plugins keep and what processes share: plugin data, jobs
and their claims, leases, token buckets, limit notices, quotas.

Reuse like tests/core/store_contract.py: an async ``store`` fixture, then
``from tests.core.store_shared_contract import *``.
"""

from __future__ import annotations

import asyncio

import pytest

from core.errors import InputRejected
from core.events import ConversationKey

T0 = 1_000_000.0
CHAT = ConversationKey("telegram", "1001")
ANN = "telegram:1001"


# -- plugin data and jobs ---------------------------------------------------------------


async def test_plugin_data_namespaces_and_prefixes(store):
    await store.plugin_set("notes", "b", {"text": "你好"})
    await store.plugin_set("notes", "a", [1, 2.5, None, "\ud800"])  # JSON keeps even a lone surrogate
    await store.plugin_set("notes", "a", 7, user_id=ANN)
    await store.plugin_set("other", "a", True)
    assert await store.plugin_get("notes", "a") == [1, 2.5, None, "\ud800"]
    assert await store.plugin_get("notes", "a", ANN) == 7
    assert await store.plugin_items("notes") == {"a": [1, 2.5, None, "\ud800"], "b": {"text": "你好"}}
    assert await store.plugin_items("notes", prefix="b") == {"b": {"text": "你好"}}
    await store.plugin_set("notes", "b", None)
    assert await store.plugin_get("notes", "b") is None
    with pytest.raises(InputRejected):
        await store.plugin_set("notes", "x", object())
    assert await store.plugin_forget_user("notes", ANN) == 1
    assert await store.plugin_get("notes", "a", ANN) is None


async def test_jobs_are_listed_due_and_rescheduled(store):
    dm = await store.add_job("remind", "ping", T0, key=CHAT, user_id=ANN, payload={"text": "喝水"})
    tick = await store.add_job("remind", "tick", T0 + 10, every=60.0)
    elsewhere = await store.add_job("remind", "ping", T0, key=ConversationKey("discord", "9"))
    assert (dm.key, dm.user_id, dm.payload, dm.every) == (CHAT, ANN, {"text": "喝水"}, None)
    assert await store.get_job(dm.id) == dm
    assert [j.id for j in await store.list_jobs("remind", user_id=ANN)] == [dm.id]
    assert [j.id for j in await store.list_jobs("remind", name="tick")] == [tick.id]
    assert [j.id for j in await store.due_jobs(T0, ["remind"], ["telegram"])] == [dm.id]
    assert [j.id for j in await store.due_jobs(T0 + 10, ["remind"], ["telegram", "discord"])] == [
        dm.id, elsewhere.id, tick.id]
    assert await store.due_jobs(T0, [], ["telegram"]) == []
    assert await store.next_job_at(["remind"], []) == T0 + 10
    assert await store.reschedule_job(tick.id, T0 + 70, attempts=2)
    assert (await store.get_job(tick.id)).attempts == 2
    assert await store.delete_job(dm.id, plugin="other") is False
    assert await store.delete_job(dm.id) is True and await store.get_job(dm.id) is None
    with pytest.raises(InputRejected):
        await store.add_job("remind", "ping", float("nan"))


async def test_a_due_job_is_claimed_by_exactly_one_claimer(store):
    jobs = [await store.add_job("remind", "ping", T0 + i) for i in range(30)]
    claims = await asyncio.gather(*(
        store.claim_jobs(T0 + 100, ["remind"], [], owner=f"worker-{w}", lease_s=60.0, limit=7) for w in range(6)
    ))
    claimed = [job.id for batch in claims for job in batch]
    assert sorted(claimed) == [job.id for job in jobs]  # every job once, none twice
    assert all(batch == sorted(batch, key=lambda j: (j.run_at, j.id)) for batch in claims)
    assert await store.claim_jobs(T0 + 100, ["remind"], [], owner="late", lease_s=60.0) == []


async def test_a_claim_expires_and_rescheduling_ends_it(store):
    job = await store.add_job("remind", "ping", T0)
    assert [j.id for j in await store.claim_jobs(T0, ["remind"], [], owner="dead", lease_s=30.0)] == [job.id]
    assert await store.claim_jobs(T0 + 29, ["remind"], [], owner="alive", lease_s=30.0) == []
    assert await store.next_job_at(["remind"], []) == T0 + 30  # the claim's end, not the past run time
    again = await store.claim_jobs(T0 + 30, ["remind"], [], owner="alive", lease_s=30.0)
    assert [j.id for j in again] == [job.id]  # the claimer died: another one retries it
    await store.reschedule_job(job.id, T0 + 31)
    assert [j.id for j in await store.claim_jobs(T0 + 31, ["remind"], [], owner="next", lease_s=30.0)] == [job.id]


# -- leases -------------------------------------------------------------------------------


async def test_a_lease_has_one_holder_until_it_expires_or_is_released(store):
    assert await store.acquire_lease("conv:telegram:1", "a", T0, 10.0) is True
    assert await store.acquire_lease("conv:telegram:1", "b", T0 + 5, 10.0) is False
    assert await store.acquire_lease("conv:telegram:1", "a", T0 + 5, 10.0) is True  # renewed to T0 + 15
    assert await store.acquire_lease("conv:telegram:1", "b", T0 + 12, 10.0) is False
    assert await store.acquire_lease("conv:telegram:2", "b", T0, 10.0) is True
    assert await store.release_lease("conv:telegram:1", "b") is False
    assert await store.release_lease("conv:telegram:1", "a") is True
    assert await store.acquire_lease("conv:telegram:1", "b", T0 + 13, 10.0) is True
    assert await store.acquire_lease("conv:telegram:2", "c", T0 + 10, 10.0) is True  # b's expired


async def test_concurrent_lease_requests_have_one_winner(store):
    won = await asyncio.gather(*(store.acquire_lease("conv:x", f"w{i}", T0, 10.0) for i in range(12)))
    assert won.count(True) == 1


# -- token buckets, notices, quotas -------------------------------------------------------


async def test_a_token_bucket_allows_its_burst_then_refills_at_its_rate(store):
    waits = [await store.take_token("user:telegram:1", 0.5, 3, T0) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] == pytest.approx(2.0)
    assert await store.take_token("user:telegram:1", 0.5, 3, T0 + 1) == pytest.approx(1.0)  # half a token now
    assert await store.take_token("user:telegram:1", 0.5, 3, T0 + 2) == 0.0
    assert await store.take_token("user:telegram:2", 0.5, 3, T0) == 0.0  # buckets are per key
    assert await store.take_token("user:telegram:1", 0.5, 3, T0 + 100) == 0.0  # full again, capped at burst
    assert [await store.take_token("user:telegram:1", 0.5, 3, T0 + 100) for _ in range(3)][-1] > 0


async def test_concurrent_takers_share_one_bucket(store):
    waits = await asyncio.gather(*(store.take_token("chat:telegram:-5", 0.001, 5, T0) for _ in range(20)))
    assert waits.count(0.0) == 5


async def test_a_limit_notice_is_due_once_per_window(store):
    assert await store.notice_due("user:telegram:1", T0, 30.0) is True
    assert await store.notice_due("user:telegram:1", T0 + 29, 30.0) is False
    assert await store.notice_due("user:telegram:2", T0 + 29, 30.0) is True
    assert await store.notice_due("user:telegram:1", T0 + 30, 30.0) is True


async def test_a_quota_counts_to_its_limit_per_period(store):
    used = [await store.use_quota("user:telegram:1", "2026-12-01", 3) for _ in range(5)]
    assert used == [True, True, True, False, False]
    assert await store.quota_used("user:telegram:1", "2026-12-01") == 3
    assert await store.use_quota("user:telegram:1", "2026-12-02", 3) is True  # a new day
    assert await store.quota_used("user:telegram:1", "2026-12-02") == 1
    assert await store.quota_used("user:telegram:1", "2026-12-01") == 0
    both = await asyncio.gather(*(store.use_quota("user:telegram:9", "d", 4) for _ in range(10)))
    assert both.count(True) == 4
    with pytest.raises(InputRejected):
        await store.use_quota("user:telegram:1", "d", 0)


async def test_retention_drops_limit_state_last_touched_before_the_cutoff(store):
    await store.take_token("user:telegram:old", 0.001, 1, T0)
    await store.notice_due("user:telegram:old", T0, 10.0)
    await store.acquire_lease("conversation:telegram:old", "w", T0, 10.0)
    await store.take_token("user:telegram:new", 0.001, 1, T0 + 5000)
    await store.delete_messages_before(T0 + 1000)
    assert await store.take_token("user:telegram:old", 0.001, 1, T0 + 1) == 0.0  # a fresh bucket again
    assert await store.notice_due("user:telegram:old", T0 + 1, 10.0) is True
    assert await store.acquire_lease("conversation:telegram:old", "other", T0 + 1, 10.0) is True
    assert await store.take_token("user:telegram:new", 0.001, 1, T0 + 5000) > 0  # kept: touched after the cutoff


async def test_forget_user_removes_their_limit_state(store):
    await store.take_token(f"user:{ANN}", 1.0, 2, T0)
    await store.notice_due(f"user:{ANN}", T0, 10.0)
    await store.use_quota(f"user:{ANN}", "d", 5)
    await store.take_token("user:telegram:10012", 1.0, 2, T0)  # an id that starts with hers stays
    counts = await store.forget_user(ANN)
    assert counts["limits"] == 3
    assert await store.quota_used(f"user:{ANN}", "d") == 0
    assert await store.take_token("user:telegram:10012", 1.0, 2, T0) == 0.0
    assert await store.take_token("user:telegram:10012", 1.0, 2, T0) > 0  # its state was kept


__all__ = [name for name in dir() if name.startswith("test_")]
