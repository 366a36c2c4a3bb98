"""Run the real Discord adapter against FakeDiscord: an App, a DiscordBot, a stop event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.discord.outbox import Pacer
from adapters.discord.bot import DiscordBot, run_bot
from bots.app_factory import bot_app
from core.app import Feature
from core.runtime import Runtime
from core.dispatcher import Route
from core.events import IncomingMessage
from core.generation.scripted import ScriptedGenerator
from core.storage.sqlite import SQLiteStore
from tests.adapters.discord_fake_server import FakeDiscord
from tests.conftest import make_settings

ADMIN_ID = 700000000000000001
USER_ID = 700000000000000002


def capture(events: list[IncomingMessage]) -> Feature:
    """A feature that records every event reaching the router, exactly as the adapter built it."""

    async def feature(app: Runtime, stack: Any) -> None:
        async def never(ctx: Any) -> None:  # pragma: no cover - the route never matches
            raise AssertionError

        app.seams.routes.add(Route("capture", lambda ctx: events.append(ctx.event) is not None, never), before="command")

    return feature


@dataclass
class Running:
    fake: FakeDiscord
    app: Runtime
    bot: DiscordBot
    generator: ScriptedGenerator
    task: asyncio.Task[None]
    stop: asyncio.Event


def discord_settings(fake: FakeDiscord, **discord: Any) -> Any:
    section = {"enabled": True, "api_base_url": fake.base_url, "edit_interval": 0.01, "admins": [str(ADMIN_ID)]}
    section.update(discord)
    return section


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    monkeypatch: Any,
    *,
    replies: Sequence[str] | Callable[[Any], str] = ("Hello there, friend!",),
    features: list[Feature] | None = None,
    limits: dict[str, Any] | None = None,
    max_new_tokens: int = 96,
    connect: bool = True,
    auto_defer_after: float = 2.0,
    token: str | None = None,
    safety: dict[str, Any] | None = None,
    access: dict[str, Any] | None = None,
    store: Any = None,
    **discord: Any,
) -> AsyncIterator[Running]:
    """The bot connected to ``fake`` (READY and guilds received); stopped and checked on exit."""
    monkeypatch.setenv("DISCORD_BOT_TOKEN", fake.token if token is None else token)
    overrides: dict[str, Any] = {
        "discord": discord_settings(fake, **discord),
        "model": {"backend": "scripted", "generation": {"max_new_tokens": max_new_tokens}},
    }
    if limits:
        overrides["limits"] = limits
    if safety:
        overrides["safety"] = safety
    if access:
        overrides["access"] = access
    settings = make_settings(**overrides)
    generator = ScriptedGenerator(replies)
    async with bot_app(settings, store=store or SQLiteStore(":memory:"), generator=generator, features=features or []) as app:
        fast = Pacer(per_channel=1000, overall=10_000, quiet_start=False)  # the rules stay, the budgets are big
        bot = DiscordBot(app, guild_ready_timeout=0.01, auto_defer_after=auto_defer_after, pacer=fast)
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(bot, stop))
        running = Running(fake, app, bot, generator, task, stop)
        try:
            if connect:
                identified = asyncio.ensure_future(fake.identified.wait())
                await asyncio.wait({identified, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
                identified.cancel()
                if task.done():
                    task.result()  # surfaces the start-up error
                assert fake.identified.is_set(), "the bot did not connect to the fake gateway"
            yield running
        finally:
            stop.set()
            done, _ = await asyncio.wait({task}, timeout=10)
        assert done, "serve did not return after stop was set"
        task.result()
