"""Streaming is moderated before it is shown: a blocked word generated mid-stream never
reaches the platform in any draft, edit or message, through the real Telegram and
Discord adapters against their fakes."""

from __future__ import annotations

import pytest

from bots.app_factory import bot_app as build_bot
from core.generation.scripted import ScriptedGenerator
from core.safety import setup_safety
from core.storage.sqlite import SQLiteStore
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import USER_ID, running_bot
from tests.adapters.telegram_fake_server import FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, serving, telegram_settings, until

REPLY = "Sure, here is a badword for you and quite a few more words after it, one by one"
SAFETY = {"moderation": {"words": ["badword"], "group": {"output": "refuse"}}}
REFUSAL = "I'd rather not say that. Let's talk about something else."


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


def shown_texts_telegram(tg: FakeBotAPI) -> list[str]:
    methods = ("sendMessage", "editMessageText", "sendMessageDraft")
    return [str(call.params.get("text", "")) for call in tg.calls if call.method in methods]


async def test_telegram_drafts_edits_and_messages_never_show_a_blocked_word(monkeypatch):
    tg = await FakeBotAPI().start()
    try:
        monkeypatch.setenv(TOKEN_ENV, tg.token)
        settings = telegram_settings(
            tg, private_streaming="draft", group_streaming="edit", reply_all_chats=["-100777"]
        ).model_copy(update={"safety": SAFETY})
        generator = ScriptedGenerator([REPLY], chunk_delay=0.01)
        async with build_bot(settings, store=SQLiteStore(":memory:"), generator=generator, features=[setup_safety]) as app:
            async with serving(app, tg):
                tg.user_message("hi", chat_id=555)
                await until(tg, lambda: tg.texts(555))
                tg.user_message("hi all", chat_id=-100777, user_id=42)
                await until(tg, lambda: tg.texts(-100777))
        shown = shown_texts_telegram(tg)
        assert len(shown) > 3  # it did stream
        assert not any("badword" in text for text in shown)
        assert tg.texts(555) == [REPLY.replace("badword", "███████")]
        assert tg.texts(-100777) == [REFUSAL]
    finally:
        await tg.close()


async def test_discord_edits_never_show_a_blocked_word(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, replies=[REPLY], features=[setup_safety], safety=SAFETY):
        message = fake.message(channel, USER_ID, f"<@{fake.bot_id}> hello", mentions_bot=True)
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_for(lambda: fake.texts_in(channel) == [REFUSAL])
    bodies = [call.body for call in fake.calls if call.method in ("POST", "PATCH") and isinstance(call.body, dict)]
    assert not any("badword" in str(body.get("content", "")) for body in bodies)
