"""Outgoing flood limits as Telegram counts them: sliding windows measured at send time.

Telegram allows about one message a second in a chat, 20 a minute in a group and 30 a
second in all. Why not PTB's AIORateLimiter (which this replaced, issue 15): its leaky
buckets let twice the budget through in one window (a full bucket, then the drain), its
limiters are taken one after the other with waits in between (a slot taken at t goes out
at t + the wait for the next limiter), and after a 429 every request that took its slots
during the pause goes out together. The soak (bench/soak_run.py) measured hundreds of
windows over budget. Here every budget is checked and the send recorded in the same
step, with no await between that and the HTTP call, so the times the budgets count are
the times the requests leave (less ``margin_s`` of scheduling jitter).

Still a :class:`telegram.ext.BaseRateLimiter` (PTB's supported hook). It also:

* retries 429 (``retry_after``, pausing every message call meanwhile) and 5xx/connection
  failures (backoff), up to ``max_retries`` each; a timeout is not retried (the message
  may be on screen: see adapters/telegram/journal.py), unless it came before the request
  left (no free connection in the pool, none made), which PTB also reports as a timeout;
* tells the send journal about each attempt just before it is made (``SendHook``), so a
  killed process knows, at the next start, what it may have shown;
* is seeded at start with the sends of the previous process (:meth:`seed`), so a restart
  does not burst into a chat or group the killed process had just used.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

import httpx
from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter

from adapters.telegram.settings import TelegramSettings
from adapters.telegram.wire import ON_BODY_WRITTEN, SendTurn

log = logging.getLogger(__name__)

# Calls that show or change a message count against the per-chat limit. Chat actions
# ("typing…") send no message: they skip every budget.
MESSAGE_ENDPOINTS = frozenset({"sendMessage", "editMessageText", "sendDocument", "sendMessageDraft"})
EXEMPT_ENDPOINTS = frozenset({"sendChatAction"})
# Timeouts before the request left (no free connection in the pool, no connection made):
# PTB raises TimedOut for them too, but nothing can have been shown.
NOT_SENT = (httpx.PoolTimeout, httpx.ConnectTimeout)
MARGIN_S = 0.1
# A group's window is a minute: a second of room costs under 2% of its budget and absorbs
# a send that reached Telegram late (the full soak saw 7 group windows over with 0.1 s).
GROUP_MARGIN_S = 1.0
_FORGET_AFTER = 256  # windows kept before idle ones are dropped


class SendHook(Protocol):
    """Told about each attempt of a message call made for one update (the send journal)."""

    async def attempt(self, endpoint: str, chat_id: str, text: str | None, message_id: str | None, at: float) -> None: ...

    async def sent(self, message_id: str | None) -> None: ...

    async def failed(self) -> None: ...


CURRENT_HOOK: contextvars.ContextVar[SendHook | None] = contextvars.ContextVar("telegram_send_hook", default=None)


class _Window:
    """At most ``count`` sends in any ``period`` seconds."""

    __slots__ = ("count", "period", "times")

    def __init__(self, count: int, period: float) -> None:
        self.count, self.period, self.times = count, period, deque[float]()

    def wait(self, now: float) -> float:
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        if len(self.times) < self.count:
            return 0.0
        return self.times[-self.count] + self.period - now


class TelegramRateLimiter(BaseRateLimiter[int]):
    def __init__(
        self,
        *,
        chat_max_rate: float = 1.0,
        overall_max_rate: float = 30.0,
        overall_time_period: float = 1.0,
        group_max_rate: float = 20.0,
        group_time_period: float = 60.0,
        max_retries: int = 5,
        margin_s: float = MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._chat_period = 1 / chat_max_rate + margin_s  # one message per period
        self._overall = (
            _Window(int(overall_max_rate), overall_time_period + margin_s) if overall_max_rate else None
        )
        self._group = (int(group_max_rate), group_time_period + max(margin_s, GROUP_MARGIN_S)) if group_max_rate else None
        self._windows: dict[str, _Window] = {}
        self._max_retries = max_retries
        self._paused_until = 0.0
        self._clock = clock
        self._turn = SendTurn()  # one journaled call between the journal and the socket (wire.py)

    @classmethod
    def from_settings(cls, settings: TelegramSettings) -> "TelegramRateLimiter":
        return cls(
            chat_max_rate=settings.chat_messages_per_second,
            overall_max_rate=settings.overall_messages_per_second,
            group_max_rate=settings.group_messages_per_minute,
            max_retries=settings.max_retries,
        )

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def seed(self, sends: Iterable[tuple[str, float]]) -> None:
        """Count earlier sends (chat id, wall-clock time), e.g. the killed process's."""
        for chat_id, at in sorted(sends, key=lambda send: send[1]):
            self._record(self._budgets(chat_id), at)

    # -- budgets ---------------------------------------------------------------------
    def _window(self, key: str, count: int, period: float) -> _Window:
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) > _FORGET_AFTER:
                now = self._clock()
                for name, idle in list(self._windows.items()):
                    if idle.wait(now) == 0 and not idle.times:
                        del self._windows[name]
            window = self._windows[key] = _Window(count, period)
        return window

    def _budgets(self, chat_id: str) -> list[_Window]:
        budgets = [self._window(f"chat:{chat_id}", 1, self._chat_period)]
        if self._group is not None and chat_id.startswith("-"):
            budgets.append(self._window(f"group:{chat_id}", *self._group))
        if self._overall is not None:
            budgets.append(self._overall)
        return budgets

    @staticmethod
    def _record(budgets: list[_Window], at: float) -> None:
        for window in budgets:
            window.times.append(at)

    @staticmethod
    def _unrecord(budgets: list[_Window], at: float) -> None:
        for window in budgets:
            if at in window.times:
                window.times.remove(at)

    async def _room(self, budgets: list[_Window]) -> None:
        """Until every budget has room (and no flood pause is on)."""
        while (delay := self._delay(budgets)) > 0:
            await asyncio.sleep(delay)

    def _delay(self, budgets: list[_Window]) -> float:
        now = self._clock()
        return max([self._paused_until - now, *(window.wait(now) for window in budgets)])

    # -- requests --------------------------------------------------------------------
    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        if endpoint in EXEMPT_ENDPOINTS or chat_id is None:
            return await callback(*args, **kwargs)
        budgets = self._budgets(str(chat_id))
        hook = CURRENT_HOOK.get() if endpoint in MESSAGE_ENDPOINTS and endpoint != "sendMessageDraft" else None
        retries = rate_limit_args if rate_limit_args is not None else self._max_retries
        floods = failures = 0
        while True:
            written = await self._slot(budgets, hook, endpoint, data)
            try:
                result = await self._call(callback, args, kwargs, written)
            except RetryAfter as error:
                floods += 1
                if hook is not None:
                    await hook.failed()
                if floods > retries:
                    raise
                pause = error.retry_after if isinstance(error.retry_after, (int, float)) else error.retry_after.total_seconds()
                self._paused_until = max(self._paused_until, self._clock() + pause + 0.1)
                log.info("Telegram flood control: every message call waits %.1f s", pause)
            except NetworkError as error:  # 5xx, connection refused, never sent: nothing was shown
                if isinstance(error, TimedOut) and not isinstance(error.__cause__, NOT_SENT):
                    raise  # timed out on the way: it may have been shown, never sent twice (the journal keeps it)
                failures += 1
                if hook is not None:
                    await hook.failed()
                if failures > retries:
                    raise
                delay = min(8.0, 0.5 * 2 ** (failures - 1))
                log.info("Telegram %s failed (%s); retrying in %.1f s", endpoint, error, delay)
                await asyncio.sleep(delay)
            else:
                if hook is not None:
                    message_id = result.get("message_id") if isinstance(result, dict) else None
                    await hook.sent(None if message_id is None else str(message_id))
                return result

    @staticmethod
    async def _call(callback: Callable[..., Coroutine[Any, Any, Any]], args: Any, kwargs: dict[str, Any],
                    written: Callable[[], None] | None) -> Any:
        """The HTTP call; ``written`` gives the send turn back when its body is on the socket."""
        if written is None:
            return await callback(*args, **kwargs)
        token = ON_BODY_WRITTEN.set(written)
        try:
            return await callback(*args, **kwargs)
        finally:
            written()
            ON_BODY_WRITTEN.reset(token)

    async def _slot(self, budgets: list[_Window], hook: SendHook | None, endpoint: str,
                    data: dict[str, Any]) -> Callable[[], None] | None:
        """Wait until every budget has room and take the slots (no await in between), then
        take the send turn and tell the journal, with the slot's time, just before the
        request leaves; returns what gives the turn back (None for a call not journaled).

        The journal is told after the slot is taken, never while waiting for one: an
        attempt it holds is always one that was about to leave (journal.py counts it as
        shown). A send that waited behind others for the turn takes its slot again while it
        holds the turn, so a stalled journal write never lets a backlog out at once; the
        write's own latency is the little the send can lag its slot (MARGIN_S)."""
        await self._room(budgets)
        at = self._clock()
        self._record(budgets, at)
        if hook is None:
            return None
        written = await self._turn.take()
        try:
            if self._clock() - at > MARGIN_S / 2:  # waited behind other sends: take the slot again, in turn
                self._unrecord(budgets, at)
                await self._room(budgets)
                at = self._clock()
                self._record(budgets, at)
            message_id = data.get("message_id")
            await hook.attempt(endpoint, str(data["chat_id"]), data.get("text") or data.get("caption"),
                               None if message_id is None else str(message_id), at)
        except BaseException:
            written()  # the journal write failed or was cancelled: nothing leaves
            raise
        now = self._clock()
        if now - at > MARGIN_S / 2:  # the journal write took long: count the send when it leaves
            self._unrecord(budgets, at)
            self._record(budgets, now)
        return written
