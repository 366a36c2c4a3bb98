"""The reader's language: /profile set language, else the platform's hint, else the bot's
language; a language without a catalog falls to the next one, never to an error."""

from __future__ import annotations

import dataclasses

import pytest

from bots.app_factory import bot_app
from core.bootstrap import FEATURES
from core.generation.scripted import ScriptedGenerator
from core.i18n import _, _n, choose_locale, normalize_locale, nt, t
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox


def test_language_tags_of_the_platforms_map_to_the_catalogs():
    assert [normalize_locale(tag) for tag in ("zh-hans", "zh-CN", "zh", "zh_Hans", "en-US", "en", "EN-gb")] == [
        "zh_Hans", "zh_Hans", "zh_Hans", "zh_Hans", "en", "en", "en",
    ]
    assert [normalize_locale(tag) for tag in ("zh-TW", "zh-hant", "fr", "", None, "klingon")] == [None] * 6
    assert choose_locale(["fr", "zh-hans", "en"]) == "zh_Hans"  # the first one we have
    assert choose_locale(["pt-BR", None, "de"]) == "en"  # nothing we have: English


def test_plurals_and_lazy_messages_render_in_each_language():
    one, many = "in {n} day", "in {n} days"
    assert [nt("en", one, many, n) for n in (1, 3)] == ["in 1 day", "in 3 days"]
    assert nt("zh_Hans", one, many, 3) == "3 天后"
    message = _("{user} is not banned.", user="telegram:7")
    assert message == "telegram:7 is not banned."  # a str, English, for logs and old callers
    assert t("zh_Hans", message) == "telegram:7 没有被封禁。"
    limit = _n(
        "You have reached today's limit of {n} message. It resets at 00:00 UTC.",
        "You have reached today's limit of {n} messages. It resets at 00:00 UTC.",
        1,
    )
    assert limit.startswith("You have reached today's limit of 1 message.")
    assert t("zh_Hans", limit) == "你已达到今天 1 条消息的上限。它会在 UTC 00:00 重置。"
    assert t("zh_Hans", "text no catalog knows") == "text no catalog knows"
    assert t("xx", "Not found.") == "Not found."  # a locale without a catalog: the msgid


def _event(text: str, locale: str | None, user: str = "telegram:1"):
    return dataclasses.replace(make_event(text, user), locale=locale)


async def answers(events, language: str = "en", features=(), admins=("telegram:999",)):
    settings = make_settings(language=language, admins=list(admins))
    outbox = RecordingOutbox()
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]), features=list(features)) as bot:
        for event in events:
            await bot.dispatcher.feed(event, outbox)
    return outbox.texts


async def test_help_renders_in_english_and_in_chinese():
    english, chinese = await answers([_event("/help", "en"), _event("/help", "zh-hans", "telegram:2")])
    assert english.startswith("Commands:\n/start — Say hello and show what I can do")
    assert "/reset — Start a new conversation" in english
    assert chinese.startswith("命令：\n/start — 打个招呼并介绍我能做什么")
    assert "/reset — 开始新的对话" in chinese and "Start a new conversation" not in chinese


async def test_an_admin_sees_the_admin_section_in_their_language():
    (text,) = await answers([_event("/help", "zh-CN", "telegram:999")], features=[FEATURES["safety"]])
    assert "\n\n管理命令：\n" in text and "/admin safety — 审核计数和滥用限制" in text


async def test_refusals_and_errors_follow_the_language():
    texts = await answers([
        _event("/admin ban telegram:5", "zh-hans"),
        _event("/admin ban telegram:5", "en"),
        _event("/nosuchcommand", "zh-hans"),
        _event("/persona nobody", "zh-hans"),
    ])
    assert texts[0] == "只有机器人的管理员才能这样做。"
    assert texts[1] == "Only the bot's admins can do that."
    assert texts[2] == "未知命令。发送 /help 查看我能做什么。"
    assert texts[3].startswith("未知角色。可选：") and "companion" in texts[3]  # persona names stay as they are


async def test_a_language_without_a_catalog_falls_back_to_the_bot_language():
    texts = await answers([_event("/reset", "pt-BR"), _event("/reset", None, "telegram:3")], language="zh")
    assert texts == ["已开始新的对话。我不会再用我们之前说过的内容。"] * 2
    (text,) = await answers([_event("/reset", "fr")], language="klingon")  # a bot language we lack: English
    assert text == "Started a new conversation. I won't use what we said before."


async def test_the_users_choice_beats_the_platform_hint():
    texts = await answers(
        [_event("/profile set language zh", "en"), _event("/reset", "en"), _event("/profile clear language", "en"), _event("/reset", "en")],
        features=[FEATURES["personalization"]],
    )
    assert texts[0] == "Saved: language = Chinese (中文)."  # the language of the event that set it
    assert texts[1] == "已开始新的对话。我不会再用我们之前说过的内容。"
    assert texts[2] == "已清除你的 language。"
    assert texts[3] == "Started a new conversation. I won't use what we said before."


@pytest.mark.parametrize("locale", ["en", "zh-hans"])
async def test_the_cut_notice_is_in_the_readers_language(locale):
    settings_text = "长" * 50
    settings = make_settings(limits={"max_input_chars": 10})
    outbox = RecordingOutbox()
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]), features=[]) as bot:
        await bot.dispatcher.feed(_event(settings_text, locale), outbox)
    expected = "（你的消息太长，我只读了前 10 个字符。）" if locale == "zh-hans" else "(Your message was long, so I only read the first 10 characters.)"
    assert outbox.texts == [expected, "ok"]
