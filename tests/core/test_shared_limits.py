"""Rate limits and quotas kept in the store: two bots' limiters on one database share
them (as two processes do), and a limiter built after a restart remembers them."""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import RateLimited
from core.middleware import RateLimiter
from core.safety.limits import AbuseLimiter
from core.settings import LimitsSettings
from core.storage.postgres import PostgresStore
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event
from tests.postgres_server import pg_server, pg_url  # noqa: F401

DAY = dt.date(2030, 1, 1)


async def _passes(limiter, event) -> bool:
    passed = []

    async def call_next(ctx) -> None:
        passed.append(ctx)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.event = event
    await limiter(ctx, call_next)
    return bool(passed)


async def _quota_case(open_store) -> None:
    limits = LimitsSettings(user_daily_quota=3, user_burst=100, chat_burst=100)
    event = make_event("hi", user="telegram:5")
    async with open_store() as one, open_store() as two:
        limiters = [AbuseLimiter(limits, clock=lambda: 1000.0, today=lambda: DAY, store=s) for s in (one, two)]
        assert [await _passes(limiters[n % 2], event) for n in range(3)] == [True, True, True]
        with pytest.raises(RateLimited, match="daily quota"):
            await _passes(limiters[1], event)  # the fourth message, on the other worker
        assert await _passes(limiters[0], event) is False  # told once, by whichever worker
    async with open_store() as restarted:
        limiter = AbuseLimiter(limits, clock=lambda: 1000.0, today=lambda: DAY, store=restarted)
        assert await limiter.quota_used("telegram:5") == 3
        assert await _passes(limiter, event) is False  # a restart is no way around the quota
        tomorrow = AbuseLimiter(limits, clock=lambda: 90000.0, today=lambda: DAY + dt.timedelta(days=1), store=restarted)
        assert await _passes(tomorrow, event) is True


async def test_a_quota_is_shared_by_two_workers_and_kept_across_a_restart_on_postgresql(pg_url):
    await _quota_case(lambda: PostgresStore(pg_url))


async def test_a_quota_survives_a_restart_on_sqlite(tmp_path):
    path = tmp_path / "bot.db"
    limits = LimitsSettings(user_daily_quota=2)
    event = make_event("hi", user="telegram:6")
    async with SQLiteStore(path) as store:
        limiter = AbuseLimiter(limits, today=lambda: DAY, store=store)
        assert [await _passes(limiter, event) for _ in range(2)] == [True, True]
    async with SQLiteStore(path) as store:
        limiter = AbuseLimiter(limits, today=lambda: DAY, store=store)
        with pytest.raises(RateLimited):
            await _passes(limiter, event)


async def test_the_core_rate_limiter_shares_its_buckets_through_the_store(pg_url):
    event = make_event("hi", user="telegram:7")
    async with PostgresStore(pg_url) as one, PostgresStore(pg_url) as two:
        limiters = [RateLimiter(60, 2, 600, 50, clock=lambda: 5000.0, store=s) for s in (one, two)]
        assert [await _passes(limiters[0], event), await _passes(limiters[1], event)] == [True, True]
        with pytest.raises(RateLimited):
            await _passes(limiters[0], event)  # the burst of 2 is spent across both workers
        assert await _passes(limiters[1], event) is False  # and the user is told once
