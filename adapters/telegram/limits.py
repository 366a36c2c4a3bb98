"""Outgoing flood limits: PTB's AIORateLimiter plus Telegram's one message per second per chat.

AIORateLimiter already gives 30 requests/s overall, 20/min per group and 429 handling
(wait ``retry_after``, pause every request meanwhile, retry up to ``max_retries``).
Telegram also asks for at most one message per second in any single chat, which it
does not do; this subclass adds that for the calls that put text on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.ext import AIORateLimiter

from adapters.telegram.settings import TelegramSettings

# Calls that show or change a message count against the per-chat limit. Chat actions
# ("typing…") send no message: they skip the per-chat and group budgets.
MESSAGE_ENDPOINTS = frozenset({"sendMessage", "editMessageText", "sendDocument", "sendMessageDraft"})
EXEMPT_ENDPOINTS = frozenset({"sendChatAction"})
_MAX_IDLE_LIMITERS = 512


class TelegramRateLimiter(AIORateLimiter):
    def __init__(
        self,
        *,
        chat_max_rate: float = 1.0,
        overall_max_rate: float = 30.0,
        overall_time_period: float = 1.0,
        group_max_rate: float = 20.0,
        group_time_period: float = 60.0,
        max_retries: int = 5,
    ) -> None:
        super().__init__(
            overall_max_rate=overall_max_rate,
            overall_time_period=overall_time_period,
            group_max_rate=group_max_rate,
            group_time_period=group_time_period,
            max_retries=max_retries,
        )
        self._chat_max_rate = chat_max_rate
        self._chat_limiters: dict[str, AsyncLimiter] = {}

    @classmethod
    def from_settings(cls, settings: TelegramSettings) -> "TelegramRateLimiter":
        return cls(
            chat_max_rate=settings.chat_messages_per_second,
            overall_max_rate=settings.overall_messages_per_second,
            group_max_rate=settings.group_messages_per_minute,
            max_retries=settings.max_retries,
        )

    def _chat_limiter(self, chat_id: str) -> AsyncLimiter:
        if len(self._chat_limiters) > _MAX_IDLE_LIMITERS:  # forget chats whose budget is full again
            for key, limiter in list(self._chat_limiters.items()):
                if key != chat_id and limiter.has_capacity(limiter.max_rate):
                    del self._chat_limiters[key]
        limiter = self._chat_limiters.get(chat_id)
        if limiter is None:
            # Capacity 1: a burst of one, then one per 1/rate seconds.
            limiter = AsyncLimiter(1, 1 / self._chat_max_rate)
            self._chat_limiters[chat_id] = limiter
        return limiter

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if endpoint in EXEMPT_ENDPOINTS:
            # ``data`` only steers the limiter; the request itself travels in ``args``.
            data = {key: value for key, value in data.items() if key != "chat_id"}
        elif endpoint in MESSAGE_ENDPOINTS and data.get("chat_id") is not None:
            await self._chat_limiter(str(data["chat_id"])).acquire()
        return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
