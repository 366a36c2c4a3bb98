"""Plugins through the platforms' own test fakes: commands published, messages and jobs on the wire."""

from __future__ import annotations

import pytest

from core.generation.scripted import ScriptedGenerator
from core.plugins import setup_plugins
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import USER_ID, running_bot
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, serving, telegram_settings, until

REMINDERS = {"enabled": ["reminders"]}


@pytest.fixture
async def telegram(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


async def test_telegram_publishes_plugin_commands_and_delivers_a_reminder_to_the_chat(telegram):
    from bots.app_factory import bot_app
    from core.storage.sqlite import SQLiteStore

    settings = telegram_settings(telegram).model_copy(update={"plugins": REMINDERS})
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["Model reply."]),
                   features=[setup_plugins]) as app:
        async with serving(app, telegram):
            telegram.user_message("remind me in 20 minutes to stretch 🧘", chat_id=555)
            await until(telegram, lambda: any("stretch 🧘 — #1" in text for text in telegram.texts(555)))
            job = (await app.services.plugins.loaded["reminders"].ctx.jobs())[0]
            assert job.key.qualified == "telegram:555"
            await app.services.plugins.scheduler.run_due(job.run_at)
            await until(telegram, lambda: telegram.texts(555)[-1:] == ["⏰ Reminder: stretch 🧘"])
            telegram.user_message("/remind list", chat_id=555)
            await until(telegram, lambda: telegram.texts(555)[-1].startswith("You have no reminders."))
    published = {c["command"] for commands in telegram.commands.values() for c in commands}
    assert "remind" in published


async def test_discord_publishes_plugin_slash_commands_and_delivers_a_reminder_in_the_channel(monkeypatch):
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        channel = fake.add_channel(guild)

        async def plugins(app, stack):  # the harness builds its own settings: add the [plugins] section
            app.settings = app.settings.model_copy(update={"plugins": REMINDERS})
            await setup_plugins(app, stack)

        async with running_bot(fake, monkeypatch, features=[plugins], sync_guilds=[str(guild)]) as bot:
            await fake.wait_for(lambda: str(guild) in fake.synced)
            published = {command["name"]: command for command in fake.synced[str(guild)]}
            assert published["remind"]["options"][0]["name"] == "request"
            message = fake.message(channel, USER_ID, f"<@{fake.bot_id}> remind me in 5 minutes to deploy",
                                   mentions_bot=True, name="alice")
            await fake.dispatch("MESSAGE_CREATE", message)
            await fake.wait_for(lambda: any("deploy — #1" in text for text in fake.texts_in(channel)))
            job = (await bot.app.services.plugins.loaded["reminders"].ctx.jobs())[0]
            await bot.app.services.plugins.scheduler.run_due(job.run_at)
            await fake.wait_for(lambda: fake.texts_in(channel)[-1:] == ["⏰ Reminder for alice: deploy"])
