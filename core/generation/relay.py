"""The common tail of every backend: decoded text pieces -> :class:`Chunk` objects.

Applies stop strings (held back until decided), the request's deadline, and
``cancel(conversation_id)`` interrupts, and tells the producer to stop whenever the
stream ends early, including when the consumer stops iterating or is cancelled.
Replacement characters (U+FFFD) are dropped: a byte-level model can sample bytes that are
no UTF-8 (half a Chinese character), which decode to "�" and would reach the user so.

Waiting for a piece costs one ``asyncio.timeout_at`` scope around the ``await``; an
interrupt expires that scope at once (:class:`Interrupt` calls back when set). The scope
never spans a ``yield``, so an expiry cannot land in the consumer's code. (A task and an
``asyncio.wait`` per piece did the same at several times the event loop's time per token.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from core.events import Chunk, FinishReason
from core.generation.text import StopFilter


NOT_TEXT = "\ufffd"  # what decoding bytes that are no UTF-8 gives


class Interrupt(asyncio.Event):
    """An event that also calls back when set, so a relay's wait for the next piece ends at once."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []

    def when_set(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def set(self) -> None:
        super().set()
        for callback in self._callbacks:
            callback()


class Interrupts:
    """Per-conversation stop signals behind a backend's ``cancel(conversation_id)``."""

    def __init__(self) -> None:
        self._events: dict[str, set[Interrupt]] = {}

    @contextlib.contextmanager
    def watch(self, conversation_id: str):
        event = Interrupt()
        self._events.setdefault(conversation_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._events.get(conversation_id, set())
            events.discard(event)
            if not events:
                self._events.pop(conversation_id, None)

    def fire(self, conversation_id: str) -> int:
        events = self._events.get(conversation_id, set())
        for event in events:
            event.set()
        return len(events)

    def fire_all(self) -> None:
        for conversation_id in list(self._events):
            self.fire(conversation_id)


async def relay(
    pieces: AsyncIterator[str],
    *,
    stop_producer: Callable[[], None],
    finish: Callable[[], Awaitable[FinishReason]],
    stops: Sequence[str],
    deadline: float,
    interrupt: Interrupt,
) -> AsyncIterator[Chunk]:
    """Yield Chunks for ``pieces`` until it ends, a stop string, ``deadline`` or ``interrupt``.

    ``deadline`` is a ``time.monotonic()`` value. ``await finish()`` gives the finish
    reason once ``pieces`` ended by itself (and raises GenerationError on failure).
    Leading whitespace of a reply is dropped ("Assistant: hi" -> "hi").
    """
    stop_filter = StopFilter(stops)
    started = False
    iterator = aiter(pieces)
    loop = asyncio.get_running_loop()
    until = loop.time() + (deadline - time.monotonic())
    scope: asyncio.Timeout | None = None

    def expire() -> None:
        if scope is not None:
            scope.reschedule(loop.time())

    interrupt.when_set(expire)

    def tail() -> str:
        rest = stop_filter.flush()
        return rest if started else rest.lstrip()

    try:
        while not interrupt.is_set():
            try:
                async with asyncio.timeout_at(until) as scope:
                    piece = await anext(iterator)
            except StopAsyncIteration:
                break
            except TimeoutError:
                if scope is None or not scope.expired():
                    raise  # the backend's own timeout, not ours
                piece = None
            finally:
                scope = None  # exited: an interrupt from now on is seen by the loop's test
            if piece is None:
                stop_producer()
                yield Chunk(tail(), FinishReason.CANCELLED if interrupt.is_set() else FinishReason.TIMEOUT)
                return
            text = stop_filter.feed(piece.replace(NOT_TEXT, ""))
            if not started:
                text = text.lstrip()
                started = bool(text)
            if stop_filter.hit is not None:
                stop_producer()
                yield Chunk(text, FinishReason.STOP_STRING)
                return
            if text:
                yield Chunk(text)
        reason = FinishReason.CANCELLED if interrupt.is_set() else await finish()
        yield Chunk(tail(), reason)
    finally:
        stop_producer()
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
