"""State the SQLite store keeps for limits and ordering: leases, token buckets, notices, quotas.

Mixed into :class:`~core.storage.sqlite.SQLiteStore`. Each method is one operation of
the engine's single writer, so a read-modify-write (a token taken from a bucket) is
atomic without any lock. The PostgreSQL store implements the same methods with
row locks (core/storage/postgres/shared.py); the contract suite runs on both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

import core.storage.values as v
from core.storage.sqlite.engine import changes, fetch_all, one


_REFILLED = "min(:size, tokens + max(:at - updated, 0) * :rate)"
_TAKE_TOKEN = f"""INSERT INTO rate_buckets (key, tokens, updated) VALUES (:key, :size - 1, :at)
ON CONFLICT (key) DO UPDATE SET tokens = {_REFILLED} - 1, updated = max(:at, updated) WHERE {_REFILLED} >= 1
RETURNING tokens"""


class SharedStateMixin:
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]

    async def acquire_lease(self, name: str, owner: str, now: float, lease_s: float) -> bool:
        """Hold ``name`` until ``now + lease_s`` (renewed if ``owner`` holds it); False if another does."""
        key, holder, span = v.lease_values(name, owner, lease_s)
        at = v.seconds(now, "now")

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(
                await changes(
                    db,
                    """INSERT INTO leases (name, owner, until) VALUES (?1, ?2, ?3)
                       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
                       WHERE leases.owner = excluded.owner OR leases.until <= ?4""",
                    (key, holder, at + span, at),
                )
            )

        return await self._write("acquire_lease", op)

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give ``name`` up; False if ``owner`` did not hold it (it expired and was taken)."""
        params = (v.name(name, "lease name"), v.name(owner, "lease owner"))

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(await changes(db, "DELETE FROM leases WHERE name = ? AND owner = ?", params))

        return await self._write("release_lease", op)

    async def take_token(self, key: str, rate: float, burst: int, now: float) -> float:
        """Take a token from bucket ``key``: 0.0 if taken, else seconds until one is available."""
        bucket, per_s, size = v.bucket_values(key, rate, burst)
        at = v.seconds(now, "now")

        async def op(db: aiosqlite.Connection) -> float:
            # One statement when a token is there (the common case); the refill is the same
            # arithmetic as core.storage.values.refill, and a refused take leaves the row as it
            # was (refilling is path-independent, so that is the same bucket).
            params = {"key": bucket, "size": size, "rate": per_s, "at": at}
            if await fetch_all(db, _TAKE_TOKEN, params):
                return 0.0
            row = await one(db, "SELECT tokens, updated FROM rate_buckets WHERE key = ?", (bucket,))
            tokens, updated = row or (size, at)
            return v.refill(tokens, updated, per_s, size, at)[1]

        return await self._write("take_token", op)

    async def notice_due(self, key: str, now: float, window_s: float) -> bool:
        """True at most once per window: whether to tell someone about limit ``key`` now."""
        notice, at, span = v.text(key, "notice key"), v.seconds(now, "now"), v.seconds(window_s, "window")

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(
                await changes(
                    db,
                    """INSERT INTO limit_notices (key, until) VALUES (?1, ?2)
                       ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE limit_notices.until <= ?3""",
                    (notice, at + span, at),
                )
            )

        return await self._write("notice_due", op)

    async def use_quota(self, key: str, period: str, limit: int) -> bool:
        """Count one use of ``key`` in ``period`` (e.g. a UTC date); False, counting
        nothing, once ``limit`` uses were counted in that period."""
        params = v.quota_values(key, period, limit)

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(
                await changes(
                    db,
                    """INSERT INTO quotas (key, period, used) VALUES (?1, ?2, 1)
                       ON CONFLICT (key) DO UPDATE SET
                           used = iif(quotas.period = excluded.period, quotas.used + 1, 1), period = excluded.period
                       WHERE quotas.period <> excluded.period OR quotas.used < ?3""",
                    params,
                )
            )

        return await self._write("use_quota", op)

    async def quota_used(self, key: str, period: str) -> int:
        params = (v.text(key, "quota key"), v.text(period, "quota period"))

        async def op(db: aiosqlite.Connection) -> int:
            row = await one(db, "SELECT used FROM quotas WHERE key = ? AND period = ?", params)
            return int(row[0]) if row else 0

        return await self._read("quota_used", op)

