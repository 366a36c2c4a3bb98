"""Through the Bot API fake: an unknown user's DM gets a pairing code, the admin approves it in
their own chat, then the user is answered; a group outside the allow list gets nothing."""

from __future__ import annotations

import re

import pytest

from core.generation.scripted import ScriptedGenerator
from core.settings import AccessSettings
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import ADMIN, TOKEN_ENV, bot_app, serving, telegram_settings, until


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


async def test_pairing_through_telegram(fake):
    access = AccessSettings(pairing=True, chats=("telegram:-300",))
    settings = telegram_settings(fake).model_copy(update={"access": access})
    async with bot_app(settings, ScriptedGenerator(lambda request: "answer")) as app, serving(app, fake):
        fake.user_message("hello", chat_id=41)
        await until(fake, lambda: fake.texts(41))
        code = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}", fake.texts(41)[0]).group(0)
        fake.user_message("@persona_test_bot hi", chat_id=-100, user_id=41)  # a group not on the list
        fake.user_message("/admin approve " + code, chat_id=ADMIN)
        await until(fake, lambda: fake.texts(ADMIN))
        fake.user_message("hello again", chat_id=41)
        await until(fake, lambda: len(fake.texts(41)) == 2)
        fake.user_message("@persona_test_bot hi", chat_id=-300, user_id=42)  # a listed group, an unknown user
        await until(fake, lambda: fake.texts(-300))
    assert fake.texts(41)[0].startswith("This bot needs an admin's approval first.")
    assert fake.texts(ADMIN) == ["Approved telegram:41: they can talk to the bot now."]
    assert fake.texts(41)[1] == "answer"
    assert fake.texts(-100) == [] and fake.texts(-300) == ["answer"]
