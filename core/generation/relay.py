"""The common tail of every backend: decoded text pieces -> :class:`Chunk` objects.

Applies stop strings (held back until decided), the request's deadline, and
``cancel(conversation_id)`` interrupts, and tells the producer to stop whenever the
stream ends early, including when the consumer stops iterating or is cancelled.
Replacement characters (U+FFFD) are dropped: a byte-level model can sample bytes that are
no UTF-8 (half a Chinese character), which decode to "�" and would reach the user so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from core.events import Chunk, FinishReason
from core.generation.text import StopFilter


NOT_TEXT = "\ufffd"  # what decoding bytes that are no UTF-8 gives


class Interrupts:
    """Per-conversation stop signals behind a backend's ``cancel(conversation_id)``."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def watch(self, conversation_id: str):
        event = asyncio.Event()
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
    interrupt: asyncio.Event,
) -> AsyncIterator[Chunk]:
    """Yield Chunks for ``pieces`` until it ends, a stop string, ``deadline`` or ``interrupt``.

    ``deadline`` is a ``time.monotonic()`` value. ``await finish()`` gives the finish
    reason once ``pieces`` ended by itself (and raises GenerationError on failure).
    Leading whitespace of a reply is dropped ("Assistant: hi" -> "hi").
    """
    stop_filter = StopFilter(stops)
    started = False
    iterator = aiter(pieces)
    interrupted = asyncio.ensure_future(interrupt.wait())
    pending: asyncio.Future[str] | None = None

    def tail() -> str:
        rest = stop_filter.flush()
        return rest if started else rest.lstrip()

    try:
        while True:
            pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait(
                (pending, interrupted), timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            if pending not in done:
                stop_producer()
                yield Chunk(tail(), FinishReason.CANCELLED if interrupted in done else FinishReason.TIMEOUT)
                return
            try:
                piece = pending.result()
            except StopAsyncIteration:
                break
            finally:
                pending = None
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
        interrupted.cancel()
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
