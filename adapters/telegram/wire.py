"""One journaled message call between the journal and the socket at a time.

The send journal (adapters/telegram/journal.py) counts an attempt whose outcome is unknown
as shown, so a kill between the journal's commit and the request's last byte leaves that
reply unsent and unanswered. When many replies were journaled in one commit, that gap
held up to 30 of them at one kill in the full soak (docs/SECURITY.md). So the rate
limiter (adapters/telegram/limits.py) takes a :class:`SendTurn` before it journals a call
and gives it back once the request's body is written to the socket, which httpcore
reports as a trace event that :class:`BodyWrittenTransport` passes on, or once the call
ends. A kill then finds at most one journaled request not yet written. The turn is short
(a write to a socket); the answers still come back concurrently.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import httpx
from telegram.request import HTTPXRequest

POOL_SIZE = 256  # PTB's own default for the bot's requests

ON_BODY_WRITTEN: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "telegram_on_body_written", default=None
)


class SendTurn:
    """A lock whose release can be called any number of times (the trace, then the call's end)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def take(self) -> Callable[[], None]:
        await self._lock.acquire()
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._lock.release()

        return give_back


class BodyWrittenTransport(httpx.AsyncBaseTransport):
    """Calls this task's ``ON_BODY_WRITTEN`` once httpcore has written a request's body."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "trace": _trace}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _trace(event: str, info: dict[str, Any]) -> None:
    if event.endswith(".send_request_body.complete") and (written := ON_BODY_WRITTEN.get()) is not None:
        written()


def bot_request() -> HTTPXRequest:
    """PTB's request for the bot's calls, with the transport that reports written bodies."""
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=POOL_SIZE))
    return HTTPXRequest(connection_pool_size=POOL_SIZE, httpx_kwargs={"transport": BodyWrittenTransport(inner)})
