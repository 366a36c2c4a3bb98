"""Adapters register an Outbox for plugin jobs: a job due at start is posted before anyone writes."""

from __future__ import annotations

import pytest

from core.events import ConversationKey
from core.generation.scripted import ScriptedGenerator
from core.plugins import setup_plugins
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import running_bot
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, serving, telegram_settings, until
from tests.plugins.helpers import write_plugin

POSTER = '''
from core.plugins import Plugin

plugin = Plugin("poster")

@plugin.job("post")
async def post(ctx, job):
    await ctx.send(job.key, job.payload["text"])
'''


def plugins_section(folder) -> dict:
    path = write_plugin(folder, "poster", POSTER)
    return {"enabled": ["poster"], "paths": {"poster": str(path)}}


async def schedule(app, key: ConversationKey, text: str) -> None:
    ctx = app.services.plugins.loaded["poster"].ctx
    await ctx.schedule("post", delay=0.0, key=key, payload={"text": text})


@pytest.fixture
async def telegram(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


async def test_telegram_delivers_a_job_scheduled_before_a_restart_without_any_message(telegram, tmp_path):
    from bots.app_factory import bot_app
    from core.storage.sqlite import SQLiteStore

    settings = telegram_settings(telegram).model_copy(update={"plugins": plugins_section(tmp_path)})

    def app():
        return bot_app(settings, store=SQLiteStore(tmp_path / "bot.db"), generator=ScriptedGenerator(["ok"]),
                   features=[setup_plugins])

    async with app() as first:  # not connected to Telegram: the job waits in the database
        await schedule(first, ConversationKey("telegram", "-100555", "7"), "早上好 ☀️")
        await schedule(first, ConversationKey("telegram", "555"), "good morning")
        assert await first.services.plugins.scheduler.run_due() == 0
    async with app() as second:
        async with serving(second, telegram):
            await until(telegram, lambda: telegram.texts(555) == ["good morning"])
            await until(telegram, lambda: telegram.texts(-100555) == ["早上好 ☀️"])
            sent = {call.params["chat_id"]: call.params.get("message_thread_id") for call in telegram.calls_of("sendMessage")}
            assert sent == {555: None, -100555: 7}
            assert await second.services.plugins.scheduler.run_due() == 0  # waits for the running batch: nothing left
            assert await second.services.plugins.loaded["poster"].ctx.jobs() == []


async def test_discord_delivers_jobs_to_channels_threads_and_dms_by_id_once_connected(monkeypatch, tmp_path):
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        channel = fake.add_channel(guild)
        thread = fake.add_thread(guild, channel)
        dm = 10**17 + 42

        async def plugins(app, stack):  # the harness builds its own settings: add the [plugins] section
            app.settings = app.settings.model_copy(update={"plugins": plugins_section(tmp_path)})
            await setup_plugins(app, stack)
            await schedule(app, ConversationKey("discord", str(channel)), "standup in 5 minutes")
            await schedule(app, ConversationKey("discord", str(channel), str(thread)), "线程里的提醒")
            await schedule(app, ConversationKey("discord", str(dm)), "just for you")
            assert await app.services.plugins.scheduler.run_due() == 0  # not connected yet

        async with running_bot(fake, monkeypatch, features=[plugins]) as bot:
            await fake.wait_for(lambda: fake.texts_in(dm) == ["just for you"])
            await fake.wait_for(lambda: fake.texts_in(thread) == ["线程里的提醒"])
            await fake.wait_for(lambda: fake.texts_in(channel) == ["standup in 5 minutes"])
            assert await bot.app.services.plugins.scheduler.run_due() == 0  # waits for the running batch: nothing left
            assert await bot.app.services.plugins.loaded["poster"].ctx.jobs() == []
            assert [message["allowed_mentions"] for message in fake.messages.values()] == [{"parse": []}] * 3
