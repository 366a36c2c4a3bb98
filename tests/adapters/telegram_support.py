"""Helpers for the Telegram tests: settings against the fake server, a running bot, generators."""

from __future__ import annotations

import asyncio
import contextlib
from adapters.telegram.settings import TelegramSettings
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from adapters.telegram.adapter import serve
from bots.app_factory import bot_app as build_bot
from core.runtime import Runtime
from core.events import ChatMessage, Chunk, FinishReason, GenerationRequest
from core.generation.text import approx_message_tokens
from core.settings import BotSettings
from tests.adapters.telegram_fake_server import FakeBotAPI
from tests.conftest import make_settings

TOKEN_ENV = "PERSONABOT_TEST_TELEGRAM_TOKEN"
ADMIN = 999


def telegram_settings(fake: FakeBotAPI | str, **telegram: Any) -> BotSettings:
    """Fast limits and cadences so a test takes fractions of a second; the rules stay the same."""
    section = {
        "enabled": True,
        "token_env": TOKEN_ENV,
        "api_base_url": fake if isinstance(fake, str) else fake.base_url,
        "chat_messages_per_second": 200,
        "overall_messages_per_second": 1000,
        "group_messages_per_minute": 60000,
        "private_edit_interval": 0.02,
        "group_edit_interval": 0.02,
        "poll_timeout_s": 5,
        "shutdown_grace_s": 5,
    }
    section.update(telegram)
    return make_settings(telegram=section, admins=[f"telegram:{ADMIN}"])


async def until(fake: FakeBotAPI, predicate: Callable[[], Any], task: asyncio.Task | None = None) -> Any:
    """Wait for ``predicate`` (re-checked on every call the bot makes); fail fast if ``task`` ends."""
    waiter = asyncio.create_task(fake.wait_for(predicate))
    waits: set[asyncio.Task] = {waiter} | ({task} if task else set())
    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return waiter.result()
    waiter.cancel()
    task.result()  # type: ignore[union-attr]  # raises what stopped the bot
    raise AssertionError("the bot stopped before the condition held")


@contextlib.asynccontextmanager
async def bot_app(settings: BotSettings, generator: Any, store: Any = None) -> AsyncIterator[Runtime]:
    from core.storage.sqlite import SQLiteStore

    async with build_bot(settings, store=store or SQLiteStore(":memory:"), generator=generator, features=[]) as app:
        yield app


@contextlib.asynccontextmanager
async def serving(app: Runtime, fake: FakeBotAPI) -> AsyncIterator[asyncio.Task]:
    """``adapters.telegram.serve`` running until the block ends (then stopped gracefully)."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop))
    webhook = app.settings.platform(TelegramSettings).mode == "webhook"
    await until(fake, lambda: fake.webhook is not None if webhook else fake.calls_of("getUpdates"), task)
    try:
        yield task
    finally:
        stop.set()
        await task


class GatedGenerator:
    """Streams ``first``, waits for ``gate``, then streams ``rest``: a reply caught mid-stream."""

    name = "gated"
    context_window = 2048

    def __init__(self, first: str, rest: str, gate: asyncio.Event | None = None) -> None:
        self.first, self.rest = first, rest
        self.gate = gate or asyncio.Event()
        self.started = asyncio.Event()

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return approx_message_tokens(messages)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        yield Chunk(self.first)
        self.started.set()
        await self.gate.wait()
        yield Chunk(self.rest, FinishReason.STOP)

    async def health(self) -> dict[str, Any]:
        return {"backend": "gated"}

    async def aclose(self) -> None:
        return None
