"""[limits] channel_cooldown_s: one chat turn per group channel per cooldown; commands and DMs pass."""

from __future__ import annotations

from bots.app_factory import bot_app
from core.dispatcher import Context
from core.etiquette import ChannelCooldown
from core.events import ChatKind
from core.generation.scripted import ScriptedGenerator
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox


async def test_a_channel_cools_down_between_chat_turns():
    now = [100.0]
    cooldown = ChannelCooldown(30, clock=lambda: now[0])
    passed = []

    async def call_next(ctx: Context) -> None:
        passed.append(ctx.event.text)

    def feed(text: str, chat: str = "-1", kind: ChatKind = ChatKind.GROUP):
        return cooldown(Context(make_event(text, "telegram:1", chat, kind=kind), RecordingOutbox()), call_next)

    await feed("first")
    await feed("too soon")
    await feed("/help")  # commands are not chat turns
    await feed("other channel", chat="-2")
    await feed("a DM", chat="1", kind=ChatKind.PRIVATE)
    now[0] = 131.0
    await feed("later")
    assert passed == ["first", "/help", "other channel", "a DM", "later"]


async def test_the_cooldown_joins_the_chain_only_when_set():
    for seconds, present in ((0, False), (5, True)):
        settings = make_settings(limits={"channel_cooldown_s": seconds})
        async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]), features=[]) as bot:
            assert ("limits:channel_cooldown" in bot.dispatcher.describe()) is present
