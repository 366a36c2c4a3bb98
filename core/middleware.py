"""The standard middlewares (de-duplication and bans live in core/recovery.py).

Each is ``async def mw(ctx, call_next)``: it may stop an event (return without
calling ``call_next``), replace ``ctx.event``, or raise a PersonabotError that the
dispatcher's error hook answers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.dispatcher import Context, Handler, Middleware
from core.errors import InputRejected, RateLimited
from core.text import normalize_user_text

def limit_input(max_chars: int) -> Middleware:
    """Normalise text (core.text rules); cut long input with a notice; refuse empty input."""

    async def input_limits(ctx: Context, call_next: Handler) -> None:
        normalized = normalize_user_text(ctx.event.text, max_chars)
        if not normalized.text and ctx.event.command is None:
            if ctx.event.addressed_to_bot:
                raise InputRejected("empty message", user_message="Please send me some text.")
            return
        if normalized.truncated:
            ctx.notices.append(f"(Your message was long, so I only read the first {max_chars} characters.)")
        ctx.event = dataclasses.replace(ctx.event, text=normalized.text)
        await call_next(ctx)

    return input_limits


@dataclass
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; one token per message."""

    rate: float
    burst: int
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        """0.0 if a token was taken, else seconds until one is available."""
        if self.tokens < 0:
            self.tokens, self.updated = float(self.burst), now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """Per-user and per-chat buckets. A limited user is told once per window, then ignored."""

    def __init__(
        self,
        user_per_minute: float,
        user_burst: int,
        chat_per_minute: float,
        chat_burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._user_rate, self._user_burst = user_per_minute / 60, user_burst
        self._chat_rate, self._chat_burst = chat_per_minute / 60, chat_burst
        self._users: dict[str, TokenBucket] = {}
        self._chats: dict[str, TokenBucket] = {}
        self._told_until: dict[str, float] = {}
        self._clock = clock

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        now = self._clock()
        user, chat = ctx.event.user.qualified, ctx.event.key.qualified
        user_bucket = self._users.setdefault(user, TokenBucket(self._user_rate, self._user_burst))
        chat_bucket = self._chats.setdefault(chat, TokenBucket(self._chat_rate, self._chat_burst))
        wait = user_bucket.take(now) or chat_bucket.take(now)
        if not wait:
            await call_next(ctx)
            return
        if self._told_until.get(user, 0.0) > now:
            return  # already told during this window
        self._told_until[user] = now + max(wait, 1.0)
        raise RateLimited(f"{user} limited in {chat}", retry_after=wait)
