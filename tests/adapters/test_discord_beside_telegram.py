"""`personabot run` wiring: Discord and Telegram served from one process, one App, one stop."""

from __future__ import annotations

import asyncio

from bots.cli import adapter_starters
from bots.app_factory import bot_app
from core.generation.scripted import ScriptedGenerator
from adapters.console.settings import ConsoleSettings
from adapters.discord.settings import DiscordSettings
from core.storage.sqlite import SQLiteStore
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.telegram_fake_server import FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, telegram_settings

REPLY = "hello from one bot"


async def test_discord_and_telegram_answer_from_one_app_and_stop_together(monkeypatch):
    telegram = await FakeBotAPI().start()
    try:
        async with FakeDiscord() as discord_api:
            monkeypatch.setenv(TOKEN_ENV, telegram.token)
            monkeypatch.setenv("DISCORD_BOT_TOKEN", discord_api.token)
            discord_section = DiscordSettings.model_validate({"enabled": True, "api_base_url": discord_api.base_url})
            base = telegram_settings(telegram)
            platforms = base.platforms | {"discord": discord_section, "console": ConsoleSettings(enabled=False)}
            settings = base.model_copy(update={"platforms": platforms})
            starters = adapter_starters(settings)
            assert [name for name, _ in starters] == ["telegram", "discord"]
            store, generator = SQLiteStore(":memory:"), ScriptedGenerator([REPLY])
            async with bot_app(settings, store=store, generator=generator, features=[]) as app:
                stop = asyncio.Event()
                tasks = [asyncio.create_task(start(app, stop), name=name) for name, start in starters]
                await discord_api.wait_for(discord_api.identified.is_set)
                dm_channel = 555000000000000009
                await discord_api.dispatch("MESSAGE_CREATE", discord_api.message(dm_channel, 42, "hi on Discord"))
                telegram.user_message("hi on Telegram", chat_id=555)
                await discord_api.wait_for(lambda: discord_api.texts_in(dm_channel) == [REPLY])
                await telegram.wait_for(lambda: telegram.texts(555) == [REPLY])
                stop.set()
                done, pending = await asyncio.wait(tasks, timeout=15)
                assert not pending
                assert [task.result() for task in done] == [None, None]
                users = {request.user_id for request in generator.requests}
                assert users == {"discord:42", "telegram:555"}
    finally:
        await telegram.close()
