"""Abuse limits: per-user and per-chat token buckets, a daily quota, a global generation cap.

Only what asks the bot for work is limited: commands and messages addressed to it.
Group chatter the bot does not answer costs nothing, so a lively group never gets a
"too fast" notice it did not provoke. A limited user (or chat) is told once per window
and then ignored until the window ends; the quota notice comes once per day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from core.dispatcher import Context, Handler
from core.errors import GenerationBusy, RateLimited
from core.i18n import _, _n
from core.events import ChatMessage, Chunk, GenerationRequest, IncomingMessage
from core.ports import Generator, Store
from core.shared_limits import SharedLimits
from core.settings import LimitsSettings


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class AbuseLimiter:
    """Middleware replacing :class:`core.middleware.RateLimiter`, with the daily quota.

    The quota counts chat messages that reach the bot (not commands) per user and UTC
    day. Given the bot's ``store``, buckets, notices and quota live in it (shared by
    every process of the bot, kept across restarts; core/shared_limits.py), else in memory.
    """

    def __init__(
        self,
        limits: LimitsSettings,
        *,
        exempt: Callable[[IncomingMessage], bool] = lambda event: False,
        clock: Callable[[], float] = time.time,
        today: Callable[[], dt.date] = utc_today,
        store: Store | None = None,
        on_limited: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_limited = on_limited  # every refused message, told or not (the operator's metrics)
        self._user = (limits.user_messages_per_minute / 60, limits.user_burst)
        self._chat = (limits.chat_messages_per_minute / 60, limits.chat_burst)
        self._quota = limits.user_daily_quota
        self._exempt = exempt
        self._clock = clock
        self._today = today
        self._limits = SharedLimits(store)

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        event = ctx.event
        if (event.command is None and not event.addressed_to_bot) or self._exempt(event):
            await call_next(ctx)
            return
        now = self._clock()
        user, chat = f"user:{event.user.qualified}", f"chat:{event.key.qualified}"
        for key, (rate, burst) in ((user, self._user), (chat, self._chat)):
            wait = await self._limits.take(key, rate, burst, now)
            if wait:
                self._on_limited()
                await self._limited(key, now, wait, user_message=self._message(key, wait))
                return
        if event.command is None and self._quota is not None and not await self._quota_left(event.user.qualified):
            return
        await call_next(ctx)

    async def _quota_left(self, user: str) -> bool:
        try:
            taken = await self._take_quota(user)
        except RateLimited:
            self._on_limited()
            raise
        if not taken:
            self._on_limited()
        return taken

    @staticmethod
    def _message(key: str, wait: float) -> str:
        seconds = max(1, math.ceil(wait))
        if key.startswith("chat:"):
            return _("This chat is sending me messages too fast. Please wait {seconds} s.", seconds=seconds)
        return _("You are sending messages too fast. Please wait {seconds} s.", seconds=seconds)

    async def _limited(self, key: str, now: float, wait: float, user_message: str) -> None:
        """Raise the notice once per window; return quietly while the window lasts."""
        if not await self._limits.notice_due(key, now, max(wait, 1.0)):
            return
        raise RateLimited(f"{key} limited", retry_after=wait, user_message=user_message)

    async def _take_quota(self, user: str) -> bool:
        """Count one message against today's quota; False (silently) once the notice was given."""
        assert self._quota is not None
        if not await self._limits.use_quota(f"user:{user}", self._today().isoformat(), self._quota):
            if not await self._limits.notice_due(f"quota:user:{user}", self._clock(), _seconds_to_midnight()):
                return False
            raise RateLimited(
                f"user:{user} over daily quota",
                retry_after=_seconds_to_midnight(),
                user_message=_n(
                    "You have reached today's limit of {n} message. It resets at 00:00 UTC.",
                    "You have reached today's limit of {n} messages. It resets at 00:00 UTC.",
                    self._quota,
                ),
            )
        return True

    async def quota_used(self, user: str) -> int:
        return await self._limits.quota_used(f"user:{user}", self._today().isoformat())


def _seconds_to_midnight() -> float:
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (midnight - now).total_seconds()


class GenerationLimiter:
    """A Generator wrapper: at most ``limit`` streams at once across the whole bot.

    A request waits up to ``wait_s`` for a slot (and at most ``max_waiting`` requests
    wait); otherwise it fails at once with GenerationBusy, which the chat service turns
    into a short "busy" reply while the user's message stays stored.
    """

    def __init__(self, inner: Generator, limit: int, wait_s: float, max_waiting: int | None = None) -> None:
        self.inner = inner
        self.limit = limit
        self._wait_s = wait_s
        self._max_waiting = max_waiting if max_waiting is not None else 4 * limit
        self._slots = asyncio.Semaphore(limit)
        self.waiting = 0
        self.in_flight = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.inner.count_tokens(messages)

    async def _acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns at once
            return
        if self._wait_s <= 0 or self.waiting >= self._max_waiting:
            raise GenerationBusy(f"all {self.limit} generation slots busy, {self.waiting} requests waiting")
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait_s)
        except TimeoutError:
            raise GenerationBusy(f"no generation slot free within {self._wait_s} s") from None
        finally:
            self.waiting -= 1

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        await self._acquire()
        self.in_flight += 1
        try:
            async for chunk in self.inner.stream(request):
                yield chunk
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def health(self) -> dict[str, Any]:
        health = dict(await self.inner.health())
        health.update(in_flight=self.in_flight, waiting=self.waiting, concurrency_limit=self.limit)
        return health

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:  # backend extras such as cancel()
        return getattr(self.inner, name)
