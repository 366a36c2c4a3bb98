"""What feeds :class:`~core.http.metrics.Metrics` from the message path.

* :class:`MetricsMiddleware`: outermost in the chain; counts what arrives and what
  fails (by exception class). Rate-limit refusals are counted by the limiters
  themselves (``on_limited``), since after the first notice they drop silently.
* :class:`AnsweredObserver`: a turn observer; counts answered turns and the reply
  latency (from the event's ``received_at`` to the stored reply).
* :class:`MeteredGenerator`: wraps the Generator port; time to first token, tokens,
  queue depth, streams in flight, busy refusals and generation failures.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import GenerationBusy, GenerationError
from core.events import ChatMessage, Chunk, GenerationRequest
from core.http.metrics import Metrics
from core.ports import Generator
from core.records import StoredMessage

if TYPE_CHECKING:
    from core.dispatcher import Context

Handler = Callable[["Context"], Awaitable[None]]


class MetricsMiddleware:
    __name__ = "metrics"

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(self, ctx: "Context", call_next: Handler) -> None:
        metrics = self._metrics
        metrics.messages_received.labels(ctx.event.key.platform).inc()
        try:
            await call_next(ctx)
        except Exception as error:
            metrics.errors.labels(type(error).__name__).inc()
            raise


class AnsweredObserver:
    __name__ = "metrics"

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, ctx: "Context", user_turn: StoredMessage, reply: str) -> None:
        platform = ctx.event.key.platform
        self._metrics.messages_answered.labels(platform).inc()
        self._metrics.reply_latency.labels(platform).observe(max(0.0, self._clock() - ctx.event.received_at))


class MeteredGenerator:
    """A Generator that measures the one it wraps; behaviour is the inner one's."""

    def __init__(self, inner: Generator, metrics: Metrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self._metrics = metrics
        self._clock = clock

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.inner.count_tokens(messages)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        metrics, started = self._metrics, self._clock()
        waiting, text = True, []
        metrics.generation_queue_depth.inc()
        metrics.generation_in_flight.inc()
        try:
            async for chunk in self.inner.stream(request):
                if waiting and chunk.text:
                    waiting = False
                    metrics.generation_queue_depth.dec()
                    metrics.time_to_first_token.observe(self._clock() - started)
                text.append(chunk.text)
                yield chunk
        except GenerationBusy:
            metrics.busy_replies.inc()
            metrics.errors.labels("GenerationBusy").inc()
            raise
        except GenerationError as error:
            metrics.errors.labels(type(error).__name__).inc()
            raise
        finally:
            if waiting:
                metrics.generation_queue_depth.dec()
            metrics.generation_in_flight.dec()
            if text:
                metrics.generated_tokens.inc(self._tokens("".join(text)))

    def _tokens(self, text: str) -> int:
        """Tokens of the reply text alone: the rendered turn minus an empty one."""
        count = self.inner.count_tokens
        return max(0, count([ChatMessage("assistant", text)]) - count([ChatMessage("assistant", "")]))

    async def health(self) -> dict[str, Any]:
        return await self.inner.health()

    async def aclose(self) -> None:
        await self.inner.aclose()
