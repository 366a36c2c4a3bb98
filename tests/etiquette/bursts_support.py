"""Helpers for the burst tests: a merger whose window the test drives, and a generator caught mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from core.bursts import Burst, BurstMerger, Mode
from core.events import ChatMessage, Chunk, FinishReason, GenerationRequest
from core.generation.text import approx_message_tokens
from core.ports import Generator
from core.runtime import Runtime


class DrivenWindow:
    """The merge window as events: it closes once the burst holds ``size`` messages
    (``sizes``: per qualified user id, others 1)."""

    def __init__(self, size: int = 1, sizes: dict[str, int] | None = None) -> None:
        self.size, self.sizes = size, sizes or {}
        self.opened: asyncio.Queue[Burst] = asyncio.Queue()  # every burst that started waiting

    async def __call__(self, seconds: float, burst: Burst) -> None:
        self.opened.put_nowait(burst)
        size = self.sizes.get(burst.events[0].user.qualified, self.size)
        while len(burst.events) < size:
            burst.grew.clear()
            await burst.grew.wait()


def with_merger(window: DrivenWindow, mode: Mode = "queue", group_s: float = 2.0, dm_s: float = 0.0) -> Callable:
    """A feature that puts a merger with ``window`` in the place of the configured one."""

    async def feature(bot: Runtime, stack: Any) -> None:
        bot.seams.middlewares.replace("merge_bursts", BurstMerger(bot.store, group_s, dm_s, mode, window))

    return feature


def with_generator(generator: Generator) -> Callable:
    async def feature(bot: Runtime, stack: Any) -> None:
        bot.seams.generator_wrappers.append(lambda _: generator)

    return feature


class HeldGenerator:
    """Replies "re: <last user text>"; the first reply streams "re:" and then waits for ``gate``."""

    name = "held"
    context_window = 2048

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()  # the first reply's first chunk is out
        self.requests: list[GenerationRequest] = []

    @property
    def asked(self) -> list[str]:
        return [request.messages[-1].content for request in self.requests]

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return approx_message_tokens(messages)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        first = len(self.requests) == 1
        yield Chunk("re:")
        if first:
            self.started.set()
            await self.gate.wait()
        yield Chunk(f" {request.messages[-1].content}", FinishReason.STOP)

    async def health(self) -> dict[str, Any]:
        return {"backend": "held"}

    async def aclose(self) -> None:
        return None


class StoredTurns:
    """A feature whose turn observer notes every stored turn (observers run after the reply is stored)."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    async def __call__(self, bot: Runtime, stack: Any) -> None:
        async def observe(ctx: Any, user_turn: Any, reply: str) -> None:
            self.turns.append((user_turn.text, reply))
            self._changed.set()

        bot.seams.turn_observers.append(observe)

    async def wait(self, n: int) -> list[tuple[str, str]]:
        while len(self.turns) < n:
            self._changed.clear()
            await self._changed.wait()
        return self.turns
