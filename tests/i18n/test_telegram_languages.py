"""Through the Bot API fake: a Telegram user's language_code picks the language of /help and
of a refusal; the command menu is published per catalog language (setMyCommands language_code)."""

from __future__ import annotations

import pytest

from core.generation.scripted import ScriptedGenerator
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, bot_app, serving, telegram_settings, until


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


def _from(user_id: int, language_code: str) -> dict:
    return {"from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code}}


async def test_help_and_a_refusal_in_the_users_telegram_language(fake):
    async with bot_app(telegram_settings(fake), ScriptedGenerator(["ok"])) as app, serving(app, fake):
        for chat_id, language in ((501, "zh-hans"), (502, "en")):
            fake.user_message("/help", chat_id=chat_id, extra=_from(chat_id, language))
            await until(fake, lambda: len(fake.texts(chat_id)) == 1)
            fake.user_message("/admin ban telegram:7", chat_id=chat_id, extra=_from(chat_id, language))
            await until(fake, lambda: len(fake.texts(chat_id)) == 2)
    chinese_help, chinese_refusal = fake.texts(501)
    english_help, english_refusal = fake.texts(502)
    assert chinese_help.startswith("命令：\n/start — 打个招呼并介绍我能做什么")
    assert chinese_refusal == "只有机器人的管理员才能这样做。"
    assert english_help.startswith("Commands:\n/start — Say hello and show what I can do")
    assert english_refusal == "Only the bot's admins can do that."


async def test_the_menu_is_published_in_each_catalog_language(fake):
    async with bot_app(telegram_settings(fake), ScriptedGenerator(["ok"])) as app, serving(app, fake):
        pass
    menus = {key: {c["command"]: c["description"] for c in commands} for key, commands in fake.commands.items()}
    default = '{"type": "default"}'
    assert menus[default]["reset"] == "Start a new conversation"
    assert menus[default + "|en"]["reset"] == "Start a new conversation"
    assert menus[default + "|zh"]["reset"] == "开始新的对话"
    assert set(menus[default + "|zh"]) == set(menus[default])
