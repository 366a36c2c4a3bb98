"""The standard middlewares (de-duplication and bans live in core/recovery.py).

Each is ``async def mw(ctx, call_next)``: it may stop an event (return without
calling ``call_next``), replace ``ctx.event``, or raise a PersonabotError that the
dispatcher's error hook answers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from core.dispatcher import Context, Handler, Middleware
from core.errors import InputRejected, RateLimited
from core.ports import Store
from core.shared_limits import SharedLimits
from core.i18n import _
from core.text import normalize_user_text

def limit_input(max_chars: int) -> Middleware:
    """Normalise text (core.text rules); cut long input with a notice; refuse empty input."""

    async def input_limits(ctx: Context, call_next: Handler) -> None:
        normalized = normalize_user_text(ctx.event.text, max_chars)
        if not normalized.text and ctx.event.command is None:
            if ctx.event.addressed_to_bot:
                raise InputRejected("empty message", user_message=_("Please send me some text."))
            return
        if normalized.truncated:
            ctx.notices.append(ctx.t("(Your message was long, so I only read the first {n} characters.)", n=max_chars))
        ctx.event = dataclasses.replace(ctx.event, text=normalized.text)
        await call_next(ctx)

    return input_limits


class RateLimiter:
    """Per-user and per-chat buckets. A limited user is told once per window, then ignored.

    Given the bot's ``store``, the buckets live in it: shared by every process of the
    bot and kept across restarts (core/shared_limits.py); else in this process's memory.
    """

    def __init__(
        self,
        user_per_minute: float,
        user_burst: int,
        chat_per_minute: float,
        chat_burst: int,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
        on_limited: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_limited = on_limited  # every refused message, told or not (the operator's metrics)
        self._user_rate, self._user_burst = user_per_minute / 60, user_burst
        self._chat_rate, self._chat_burst = chat_per_minute / 60, chat_burst
        self._limits = SharedLimits(store)
        self._clock = clock

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        now = self._clock()
        user, chat = ctx.event.user.qualified, ctx.event.key.qualified
        wait = await self._limits.take(f"user:{user}", self._user_rate, self._user_burst, now) or await self._limits.take(
            f"chat:{chat}", self._chat_rate, self._chat_burst, now
        )
        if not wait:
            await call_next(ctx)
            return
        self._on_limited()
        if not await self._limits.notice_due(f"user:{user}", now, max(wait, 1.0)):
            return  # already told during this window
        raise RateLimited(f"{user} limited in {chat}", retry_after=wait)
