"""At start the Discord adapter answers the turns a crash left unanswered, once each."""

from __future__ import annotations

import pytest

from core.events import ConversationKey
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import USER_ID, running_bot

REPLY = "Hello there, friend!"


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


def crashed_turns(keys_and_texts):
    """A feature that stores user turns with no reply, as a process killed mid-reply leaves them."""

    async def feature(app, stack):
        for key, text in keys_and_texts:
            await app.store.touch_user(f"discord:{USER_ID}")
            conversation = await app.store.active_conversation(key)
            await app.store.add_user_message(conversation.id, f"discord:{USER_ID}", text, f"discord:message:{hash(text)}")

    return feature


async def test_turns_a_crash_left_unanswered_are_answered_at_start_once(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    key = ConversationKey("discord", str(channel))
    feature = crashed_turns([(key, "first question 你好"), (key, "second question")])
    async with running_bot(fake, monkeypatch, features=[feature]) as bot:
        await fake.wait_for(lambda: len(fake.texts_in(channel)) == 2)
        conversation = await bot.app.store.active_conversation(key)
        history = [(m.role, m.text, m.answered) for m in await bot.app.store.history(conversation.id)]
        assert history == [("user", "first question 你好", True), ("user", "second question", True),
                           ("assistant", REPLY, False), ("assistant", REPLY, False)]
        assert await bot.app.store.unanswered("discord") == []
        await fake.drop_connection(4000)  # a RESUME or re-IDENTIFY later does not answer them again
        await fake.wait_for(lambda: fake.identified.is_set())
    assert fake.texts_in(channel) == [REPLY, REPLY]
