"""Bursts (core/bursts.py) through the Telegram and Discord fakes: one user's quick messages are
one turn, a message during a streaming reply waits behind it, and "restart" mode cancels it.
Time is driven by events (DrivenWindow, HeldGenerator), never by sleeps."""

from __future__ import annotations

import asyncio

import pytest

from bots.app_factory import bot_app
from core.bursts import STOPPED
from core.events import ConversationKey
from core.generation.scripted import ScriptedGenerator
from core.i18n import t
from core.storage.sqlite import SQLiteStore
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import USER_ID, running_bot
from tests.adapters.telegram_fake_server import BOT_USERNAME, TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, serving, telegram_settings, until
from tests.conftest import make_event, make_settings
from tests.etiquette.bursts_support import (
    DrivenWindow,
    HeldGenerator,
    StoredTurns,
    with_generator,
    with_merger,
)
from tests.fakes import RecordingOutbox

GROUP, DM = -100777, 4242


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


def echo(request) -> str:
    return f"echo: {request.messages[-1].content}"


async def stored(bot, chat_id: int | str, platform: str = "telegram") -> list[tuple[str, str]]:
    conversation = await bot.store.active_conversation(ConversationKey(platform, str(chat_id)))
    return [(m.role, m.text) for m in await bot.store.history(conversation.id, limit=200)]


async def test_a_burst_of_50_group_messages_is_one_turn_and_every_line_is_stored(fake):
    window = DrivenWindow(sizes={"telegram:7": 50})
    generator = ScriptedGenerator(lambda request: f"{len(request.messages[-1].content.splitlines())} lines")
    lines = [f"line {n} 第{n}行" for n in range(50)]
    app = bot_app(telegram_settings(fake), store=SQLiteStore(":memory:"), generator=generator, features=[with_merger(window)])
    async with app as bot:
        async with serving(bot, fake):
            for line in lines:
                fake.user_message(f"@{BOT_USERNAME} {line}", chat_id=GROUP, user_id=7)
            fake.user_message(f"@{BOT_USERNAME} not part of it", chat_id=GROUP, user_id=8)  # another user: own turn
            await until(fake, lambda: len(fake.texts(GROUP)) == 2)
        history = await stored(bot, GROUP)  # the graceful stop waited for both turns
    merged = "\n".join(lines)
    assert sorted(generator.requests[i].messages[-1].content for i in range(2)) == sorted([merged, "not part of it"])
    assert sorted(fake.texts(GROUP)) == ["1 lines", "50 lines"]
    assert [text for role, text in history if role == "user"].count(merged) == 1
    assert len(history) == 4  # two user turns, two replies: nothing lost, nothing twice
    last_line = fake.delivered[49]["message"]["message_id"]
    replied = {m["text"]: m.get("reply_to_message_id") for m in fake.bot_messages(GROUP)}
    assert replied["50 lines"] == last_line  # the answer threads to the burst's last message


async def test_a_burst_longer_than_the_input_limit_is_cut_and_the_cut_is_said_in_the_users_language(fake):
    window, generator = DrivenWindow(size=3), ScriptedGenerator(echo)
    settings = telegram_settings(fake)
    settings = settings.model_copy(update={"limits": settings.limits.model_copy(update={"max_input_chars": 11})})
    app = bot_app(settings, store=SQLiteStore(":memory:"), generator=generator, features=[with_merger(window)])
    async with app as bot, serving(bot, fake):
        for text in ("一二三四", "五六七八", "九十十一"):
            fake.user_message(f"@{BOT_USERNAME} {text}", chat_id=GROUP, user_id=7, extra={"from": {
                "id": 7, "is_bot": False, "first_name": "Li", "language_code": "zh-hans"}})
        await until(fake, lambda: len(fake.texts(GROUP)) == 2)
    assert generator.requests[0].messages[-1].content == "一二三四\n五六七八\n九"
    assert fake.texts(GROUP)[0] == t("zh_Hans", "(Your message was long, so I only read the first {n} characters.)", n=11)
    assert fake.texts(GROUP)[0] != t("en", "(Your message was long, so I only read the first {n} characters.)", n=11)


async def test_a_message_during_a_streaming_reply_waits_for_it(fake):
    window, generator, turns = DrivenWindow(), HeldGenerator(), StoredTurns()
    settings = telegram_settings(fake, private_streaming="edit")
    app = bot_app(settings, store=SQLiteStore(":memory:"), generator=generator, features=[with_merger(window), turns])
    async with app as bot:
        async with serving(bot, fake):
            fake.user_message("first", chat_id=DM)
            await window.opened.get()
            await generator.started.wait()
            await until(fake, lambda: fake.texts(DM) == ["re:"])  # the first reply is on screen, unfinished
            fake.user_message("second", chat_id=DM)
            await window.opened.get()  # the second message is past its window (DMs: none)
            assert generator.asked == ["first"]  # and waits: not answered in parallel
            generator.gate.set()
            await turns.wait(2)
            await until(fake, lambda: fake.texts(DM) == ["re: first", "re: second"])
        history = await stored(bot, DM)
    assert generator.asked == ["first", "second"]
    assert history == [("user", "first"), ("assistant", "re: first"), ("user", "second"), ("assistant", "re: second")]


async def test_restart_mode_stops_the_streaming_reply_and_answers_the_new_message(fake):
    window, generator = DrivenWindow(), HeldGenerator()
    settings = telegram_settings(fake, private_streaming="edit")
    features = [with_merger(window, mode="restart")]
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=generator, features=features) as bot:
        async with serving(bot, fake):
            fake.user_message("tell me a long story", chat_id=DM)
            await generator.started.wait()
            await until(fake, lambda: fake.texts(DM) == ["re:"])
            fake.user_message("no, a short one", chat_id=DM)
            await until(fake, lambda: fake.texts(DM) == [t("en", STOPPED), "re: no, a short one"])
        history = await stored(bot, DM)
    assert generator.asked == ["tell me a long story", "no, a short one"]
    assert history == [  # each text once: the partial reply answers the first turn
        ("user", "tell me a long story"), ("assistant", "re:"), ("user", "no, a short one"), ("assistant", "re: no, a short one"),
    ]


async def test_restart_with_telegram_drafts_leaves_the_notice_not_half_a_reply(fake):
    window, generator = DrivenWindow(), HeldGenerator()
    features = [with_merger(window, mode="restart")]
    async with bot_app(telegram_settings(fake), store=SQLiteStore(":memory:"), generator=generator, features=features) as bot:
        async with serving(bot, fake):
            fake.user_message("first", chat_id=DM)
            await generator.started.wait()
            fake.user_message("second", chat_id=DM)
            await until(fake, lambda: "re: second" in fake.texts(DM))
            await until(fake, lambda: len(fake.texts(DM)) == 2)
    assert fake.texts(DM) == [t("en", STOPPED), "re: second"]


# -- Discord -----------------------------------------------------------------------------


@pytest.fixture
async def discord():
    async with FakeDiscord() as server:
        yield server


def mention(fake, channel, text):
    return fake.message(channel, USER_ID, f"<@{fake.bot_id}> {text}", mentions_bot=True)


async def test_discord_a_burst_in_a_channel_is_one_turn(discord, monkeypatch):
    window, turns = DrivenWindow(size=3), StoredTurns()
    channel = discord.add_channel(discord.add_guild())
    async with running_bot(discord, monkeypatch, replies=echo, features=[with_merger(window), turns]) as bot:
        for text in ("hi", "quick question", "你好吗"):
            await discord.dispatch("MESSAGE_CREATE", mention(discord, channel, text))
        await turns.wait(1)
        history = await stored(bot.app, channel, "discord")
    assert discord.texts_in(channel) == ["echo: hi\nquick question\n你好吗"]
    assert history == [("user", "hi\nquick question\n你好吗"), ("assistant", "echo: hi\nquick question\n你好吗")]


async def test_discord_restart_edits_the_stopped_reply_and_answers_the_new_one(discord, monkeypatch):
    window, generator, turns = DrivenWindow(), HeldGenerator(), StoredTurns()
    features = [with_merger(window, mode="restart"), with_generator(generator), turns]
    channel = discord.add_channel(discord.add_guild())
    async with running_bot(discord, monkeypatch, features=features) as bot:
        await discord.dispatch("MESSAGE_CREATE", mention(discord, channel, "first"))
        await generator.started.wait()
        await discord.wait_for(lambda: discord.texts_in(channel) == ["re:"])
        await discord.dispatch("MESSAGE_CREATE", mention(discord, channel, "second"))
        await discord.wait_for(lambda: discord.texts_in(channel) == [t("en", STOPPED), "re: second"])
        await turns.wait(1)  # the stopped turn is not observed: only finished ones are
        history = await stored(bot.app, channel, "discord")
    assert history == [("user", "first"), ("assistant", "re:"), ("user", "second"), ("assistant", "re: second")]


async def test_a_joined_messages_delivery_ends_only_after_its_turn_is_stored():
    window, turns = DrivenWindow(size=2), StoredTurns()
    features = [with_merger(window, dm_s=1.0), turns]
    async with bot_app(make_settings(), store=SQLiteStore(":memory:"), generator=ScriptedGenerator(echo), features=features) as bot:
        outbox = RecordingOutbox()
        first = asyncio.create_task(bot.dispatcher.feed(make_event("one"), outbox))
        await window.opened.get()
        second = asyncio.create_task(bot.dispatcher.feed(make_event("two"), outbox))
        stored_when_done: list[int] = []
        second.add_done_callback(lambda _: stored_when_done.append(len(turns.turns)))
        await asyncio.gather(first, second)
    assert turns.turns == [("one\ntwo", "echo: one\ntwo")]
    assert stored_when_done == [1]  # an adapter that marks the update handled then finds it stored
