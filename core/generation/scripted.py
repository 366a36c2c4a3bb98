"""A deterministic Generator for tests, demos and benchmarks.

    gen = ScriptedGenerator(["Hello!", "Second reply."])      # cycled in order
    gen = ScriptedGenerator(lambda request: request.messages[-1].content.upper())
    gen = ScriptedGenerator(["ok", GenerationBusy()])           # the 2nd call raises

Replies stream word by word (whitespace kept, so the chunks join back to the reply).
It honours ``max_new_tokens`` (one word = one token, finish LENGTH), stop strings
(finish STOP_STRING) and cancellation, counts tokens with the same estimate as the
OpenAI backend without a tokenizer, and keeps every request in ``requests`` so a test
can assert what the chat service sent. ``hold`` (an ``asyncio.Event``) makes every
stream wait before its first chunk, for tests of concurrency and cancellation.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from core.events import ChatMessage, Chunk, FinishReason, GenerationRequest
from core.generation.text import StopFilter, approx_message_tokens

Script = Sequence["str | BaseException"] | Callable[[GenerationRequest], str]

_WORDS = re.compile(r"\s*\S+|\s+\Z")


class ScriptedGenerator:
    def __init__(
        self,
        replies: Script,
        *,
        name: str = "scripted",
        context_window: int = 2048,
        chunk_delay: float = 0.0,
        hold: asyncio.Event | None = None,
    ) -> None:
        if not callable(replies):
            if not replies:
                raise ValueError("ScriptedGenerator needs at least one reply")
            self._cycle = itertools.cycle(list(replies))
        self._replies = replies
        self.name = name
        self.context_window = context_window
        self.chunk_delay = chunk_delay
        self.hold = hold
        self.requests: list[GenerationRequest] = []
        self.cancelled: list[str] = []  # conversation ids passed to cancel()
        self._active: dict[str, set[asyncio.Event]] = {}

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return approx_message_tokens(messages)

    def _next_reply(self, request: GenerationRequest) -> str:
        if callable(self._replies):
            return self._replies(request)
        item = next(self._cycle)
        if isinstance(item, BaseException):
            raise item
        return item

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        reply = self._next_reply(request)
        stop = asyncio.Event()
        self._active.setdefault(request.conversation_id, set()).add(stop)
        try:
            if self.hold is not None:
                await self.hold.wait()
            stops = StopFilter(request.params.stop)
            words = _WORDS.findall(reply)
            for n, word in enumerate(words):
                if stop.is_set():
                    yield Chunk("", FinishReason.CANCELLED)
                    return
                if n == request.params.max_new_tokens:
                    yield Chunk(stops.flush(), FinishReason.LENGTH)
                    return
                text = stops.feed(word)
                if stops.hit is not None:
                    yield Chunk(text, FinishReason.STOP_STRING)
                    return
                if text:
                    yield Chunk(text)
                await asyncio.sleep(self.chunk_delay)
            yield Chunk(stops.flush(), FinishReason.STOP)
        finally:
            active = self._active[request.conversation_id]
            active.discard(stop)
            if not active:
                del self._active[request.conversation_id]

    def cancel(self, conversation_id: str) -> int:
        """Stop the streams of one conversation (they end with CANCELLED); returns how many."""
        self.cancelled.append(conversation_id)
        events = self._active.get(conversation_id, set())
        for event in events:
            event.set()
        return len(events)

    async def health(self) -> dict[str, Any]:
        return {"backend": "scripted", "ok": True, "requests": len(self.requests)}

    async def aclose(self) -> None:
        for events in self._active.values():
            for event in events:
                event.set()
