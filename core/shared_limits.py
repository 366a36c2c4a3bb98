"""Where the rate limiters keep their state: the store, or this process's memory.

Given a Store, every token bucket, "already told" notice and daily quota lives in it
(``Store.take_token``, ``notice_due``, ``use_quota``), so all the processes of a bot
share one limit per user and chat, and a restart resets nothing. Without one (tests,
tools) the same arithmetic (core.storage.values.refill) runs on dictionaries here.
Times are wall-clock seconds: processes on several hosts must agree on them.
"""

from __future__ import annotations

import core.storage.values as v
from core.ports import Store

PRUNE_ABOVE = 10_000  # in-memory buckets kept before full (idle) ones are dropped


class SharedLimits:
    def __init__(self, store: Store | None = None) -> None:
        self._store = store
        self._buckets: dict[str, tuple[float, float, float, int]] = {}  # key -> tokens, updated, rate, burst
        self._notices: dict[str, float] = {}
        self._quotas: dict[str, tuple[str, int]] = {}

    async def take(self, key: str, rate: float, burst: int, now: float) -> float:
        """Take a token from bucket ``key``: 0.0 if taken, else seconds until one is available."""
        if self._store is not None:
            return await self._store.take_token(key, rate, burst, now)
        if key not in self._buckets and len(self._buckets) > PRUNE_ABOVE:
            self._prune(now)
        tokens, updated, _, _ = self._buckets.get(key, (float(burst), now, rate, burst))
        left, wait = v.refill(tokens, updated, rate, burst, now)
        self._buckets[key] = (left, max(now, updated), rate, burst)
        return wait

    async def notice_due(self, key: str, now: float, window_s: float) -> bool:
        """True at most once per window: whether to tell the user about limit ``key`` now."""
        if self._store is not None:
            return await self._store.notice_due(key, now, window_s)
        if self._notices.get(key, 0.0) > now:
            return False
        self._notices[key] = now + window_s
        return True

    async def use_quota(self, key: str, period: str, limit: int) -> bool:
        """Count one use in ``period``; False, counting nothing, once ``limit`` were counted."""
        if self._store is not None:
            return await self._store.use_quota(key, period, limit)
        seen, used = self._quotas.get(key, (period, 0))
        used = used if seen == period else 0
        if used >= limit:
            return False
        self._quotas[key] = (period, used + 1)
        return True

    async def quota_used(self, key: str, period: str) -> int:
        if self._store is not None:
            return await self._store.quota_used(key, period)
        seen, used = self._quotas.get(key, (period, 0))
        return used if seen == period else 0

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled completely: they behave like new ones."""
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if (now - bucket[1]) * bucket[2] < bucket[3]
        }
        self._notices = {key: until for key, until in self._notices.items() if until > now}
