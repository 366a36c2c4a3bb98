"""Start-up recovery with several Telegram workers on one PostgreSQL database: each takes
the conversation's lease (core/conversation_lease.py) before it re-answers a turn a crash
left unanswered, and checks the turn again under it, so the turn is answered once.

Both workers read the unanswered turn before either generates (the generators wait on one
gate), so without the lease both would answer it."""

from __future__ import annotations

import asyncio

import pytest

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.settings import TelegramSettings
from core.events import ConversationKey
from core.storage.postgres import PostgresStore
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import GatedGenerator, bot_app, telegram_settings
from tests.conftest import make_settings
from tests.postgres_server import pg_server, pg_url  # noqa: F401  (fixtures)

CHAT = 777


@pytest.fixture
async def fake():
    server = await FakeBotAPI().start()
    yield server
    await server.close()


async def test_two_workers_recovering_at_once_answer_a_turn_once(fake, pg_url):
    section = telegram_settings(fake, private_streaming="final").platform(TelegramSettings)
    settings = make_settings(telegram=section.model_dump(exclude_unset=True), storage={"url": pg_url})
    gate = asyncio.Event()
    key = ConversationKey("telegram", str(CHAT))
    async with (
        bot_app(settings, GatedGenerator("Here ", "I am.", gate), PostgresStore(pg_url)) as one,
        bot_app(settings, GatedGenerator("Here ", "I am.", gate), PostgresStore(pg_url)) as two,
    ):
        conversation = await one.store.active_conversation(key)
        await one.store.touch_user(f"telegram:{CHAT}")
        await one.store.add_user_message(conversation.id, f"telegram:{CHAT}", "are you there?", "telegram:update:1:5")
        workers = [TelegramAdapter(app, TOKEN) for app in (one, two)]
        for worker in workers:
            await worker.application.bot.initialize()
        tasks = [task for worker in workers for task in await worker.start_recovery()]
        assert len(tasks) == 2  # each worker found the turn unanswered
        gate.set()
        answered = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        for worker in workers:
            await worker.application.bot.shutdown()
        history = await two.store.history(conversation.id)
    assert sorted(answered) == [0, 1]
    assert [(m.role, m.text) for m in history] == [("user", "are you there?"), ("assistant", "Here I am.")]
    assert fake.texts(CHAT) == ["Here I am."]
