"""Show a reply while it is generated: typing indicator, throttled edits, splitting.

The platform decides the cadence (``Outbox.edit_interval``) and the limit
(``Outbox.max_message_length``); this module guarantees the invariant users see:
when the stream ends, the messages on screen together carry exactly the full reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from core.events import Chunk, ConversationKey, FinishReason, Reply, SentMessage
from core.ports import Outbox
from core.text import split_text

log = logging.getLogger(__name__)

TYPING_RENEW_S = 4.0  # Telegram's "typing" lasts 5 s, Discord's 10 s


@contextlib.asynccontextmanager
async def typing_indicator(outbox: Outbox, key: ConversationKey) -> AsyncIterator[None]:
    """Keep 'typing…' visible until the block ends. Failures only cost the indicator."""

    async def renew() -> None:
        while True:
            try:
                await outbox.typing(key)
            except Exception as exc:  # the indicator is cosmetic; never fail a reply for it
                log.debug("typing indicator failed: %s", exc)
            await asyncio.sleep(TYPING_RENEW_S)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ReplyStreamer:
    """Turns a stream of chunks into sent and edited messages on one Outbox."""

    def __init__(
        self,
        outbox: Outbox,
        key: ConversationKey,
        reply_to: str | None = None,
        *,
        fences: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._key = key
        self._reply_to = reply_to
        self._fences = fences
        self._clock = clock
        self._interval = outbox.edit_interval()
        self._closed: list[SentMessage] = []  # complete messages, never edited again
        self._open: tuple[SentMessage, str] | None = None  # the growing message and its text
        self._pending = ""  # text that belongs to the open message
        self._last_edit = 0.0
        self.text = ""  # everything received so far
        self.finish_reason: FinishReason | None = None

    async def consume(self, chunks: AsyncIterator[Chunk]) -> str:
        async for chunk in chunks:
            self.text += chunk.text
            self._pending += chunk.text
            if chunk.finish_reason is not None:
                self.finish_reason = chunk.finish_reason
            if self._interval is not None and self._pending.strip():
                await self._show(final=False)
        return self.text

    async def finish(self, final_text: str | None = None) -> list[SentMessage]:
        """Show the final text (``final_text`` replaces what was streamed, e.g. after moderation)."""
        if final_text is not None and final_text != self.text:
            await self._replace_all(final_text)
        else:
            await self._show(final=True)
        return self._closed + ([self._open[0]] if self._open else [])

    def _split(self, text: str) -> list[str]:
        return split_text(text, self._outbox.max_message_length, self._outbox.measure, fences=self._fences)

    async def _show(self, final: bool) -> None:
        parts = self._split(self._pending) if self._pending else []
        while len(parts) > 1:  # every part but the last is complete: pin it to its own message
            await self._put(parts.pop(0), close=True)
        self._pending = parts[0] if parts else ""
        if not self._pending.strip():
            return
        due = self._open is None or self._clock() - self._last_edit >= (self._interval or 0.0)
        if final or due:
            await self._put(self._pending, close=final)

    async def _put(self, text: str, close: bool) -> None:
        """Write ``text`` into the open message, sending it first if there is none."""
        shown = text.strip() or "…"
        if self._open is None:
            reply_to = self._reply_to if not self._closed else None
            self._open = (await self._outbox.send(self._key, Reply(shown, reply_to=reply_to, answer=True)), shown)
        elif self._open[1] != shown:
            await self._outbox.edit(self._open[0], shown)
            self._open = (self._open[0], shown)
        self._last_edit = self._clock()
        if close:
            self._closed.append(self._open[0])
            self._open = None

    async def _replace_all(self, final_text: str) -> None:
        """Overwrite what was shown with ``final_text``, re-using the messages already sent."""
        shown = self._closed + ([self._open[0]] if self._open else [])
        parts = self._split(final_text) or [""]
        for index, part in enumerate(parts):
            text = part.strip() or "…"
            if index < len(shown):
                await self._outbox.edit(shown[index], text)
            else:
                reply_to = self._reply_to if index == 0 else None
                shown.append(await self._outbox.send(self._key, Reply(text, reply_to=reply_to, answer=True)))
        for extra in shown[len(parts):]:
            await self._outbox.edit(extra, "…")
        self._closed, self._open, self._pending = shown, None, ""
