"""State the PostgreSQL store keeps for limits and ordering: leases, token buckets,
notices, quotas — shared by every process on the database.

Each method is one atomic statement (an upsert whose ``WHERE`` decides) or one short
transaction holding the row's lock, so two processes taking the last token of one
bucket at once get one token between them. The same methods, on one writer, are in
core/storage/sqlite/shared.py; the contract suite runs on both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

import core.storage.values as v


def count(status: str) -> int:
    """Rows an INSERT/UPDATE/DELETE touched, from asyncpg's status string ("UPDATE 3")."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, AttributeError):
        return 0


class SharedStateMixin:
    _run: Callable[..., Awaitable[Any]]

    async def acquire_lease(self, name: str, owner: str, now: float, lease_s: float) -> bool:
        """Hold ``name`` until ``now + lease_s`` (renewed if ``owner`` holds it); False if another does."""
        key, holder, span = v.lease_values(name, owner, lease_s)
        at = v.seconds(now, "now")
        return bool(count(await self._run("acquire_lease", lambda c: c.execute(
            """INSERT INTO leases AS l (name, owner, until) VALUES ($1, $2, $3)
               ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
               WHERE l.owner = excluded.owner OR l.until <= $4""", key, holder, at + span, at))))

    async def release_lease(self, name: str, owner: str) -> bool:
        params = (v.name(name, "lease name"), v.name(owner, "lease owner"))
        return bool(count(await self._run("release_lease", lambda c: c.execute(
            "DELETE FROM leases WHERE name = $1 AND owner = $2", *params))))

    async def take_token(self, key: str, rate: float, burst: int, now: float) -> float:
        """Take a token from bucket ``key``: 0.0 if taken, else seconds until one is available."""
        bucket, per_s, size = v.bucket_values(key, rate, burst)
        at = v.seconds(now, "now")

        async def op(conn: asyncpg.Connection) -> float:
            await conn.execute(
                "INSERT INTO rate_buckets (key, tokens, updated) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                bucket, float(size), at)
            tokens, updated = await conn.fetchrow(
                "SELECT tokens, updated FROM rate_buckets WHERE key = $1 FOR UPDATE", bucket)
            left, wait = v.refill(tokens, updated, per_s, size, at)
            await conn.execute(
                "UPDATE rate_buckets SET tokens = $2, updated = $3 WHERE key = $1", bucket, left, max(at, updated))
            return wait

        return await self._run("take_token", op, tx=True)

    async def notice_due(self, key: str, now: float, window_s: float) -> bool:
        """True at most once per window: whether to tell someone about limit ``key`` now."""
        notice, at, span = v.text(key, "notice key"), v.seconds(now, "now"), v.seconds(window_s, "window")
        return bool(count(await self._run("notice_due", lambda c: c.execute(
            """INSERT INTO limit_notices AS n (key, until) VALUES ($1, $2)
               ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE n.until <= $3""",
            notice, at + span, at))))

    async def use_quota(self, key: str, period: str, limit: int) -> bool:
        """Count one use of ``key`` in ``period``; False, counting nothing, once ``limit`` were counted."""
        params = v.quota_values(key, period, limit)
        return bool(count(await self._run("use_quota", lambda c: c.execute(
            """INSERT INTO quotas AS q (key, period, used) VALUES ($1, $2, 1)
               ON CONFLICT (key) DO UPDATE SET
                   used = CASE WHEN q.period = excluded.period THEN q.used + 1 ELSE 1 END, period = excluded.period
               WHERE q.period <> excluded.period OR q.used < $3""", *params))))

    async def quota_used(self, key: str, period: str) -> int:
        params = (v.text(key, "quota key"), v.text(period, "quota period"))
        used = await self._run("quota_used", lambda c: c.fetchval(
            "SELECT used FROM quotas WHERE key = $1 AND period = $2", *params))
        return int(used or 0)
