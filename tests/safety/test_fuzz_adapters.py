"""Hostile Unicode through each platform adapter's conversion and sending code, with the
safety feature on: no exception escapes, the stored turn is the converted text after
core.text.normalize_user_text, every message the platform receives is within its limits.

Telegram: a Bot API update -> adapters.telegram.convert.update_to_event -> Dispatcher ->
TelegramOutbox, whose calls go over HTTP to the Bot API fake (which answers 400 to an
empty or over-long text, as Telegram does). Discord: a MESSAGE_CREATE through the fake
gateway to the running discord.py client, replies over REST to the fake.
"""

import asyncio
import itertools
import os
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.errors import PersonabotError
from core.generation.scripted import ScriptedGenerator
from core.safety import setup_safety
from core.text import normalize_user_text
from tests.safety.conftest import safe_app
from tests.safety.strategies import hostile_text

_ids = itertools.count(1)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def echo_thrice(request):
    """Long, hostile replies: the user's (possibly cut) message three times."""
    return "\n".join([request.messages[-1].content] * 3)


def watch_errors(app) -> list[BaseException]:
    """Errors that are not PersonabotError would be bugs: record them."""
    unexpected: list[BaseException] = []
    default_hook = app.dispatcher.on_error

    async def hook(ctx, error):
        if not isinstance(error, PersonabotError):
            unexpected.append(error)
        await default_hook(ctx, error)

    app.dispatcher.on_error = hook
    return unexpected


async def stored_user_turn(app, key):
    conversation = await app.store.active_conversation(key)
    turns = [m for m in await app.store.history(conversation.id, limit=10) if m.role == "user"]
    return turns[-1].text if turns else None


# -- Telegram ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def telegram():
    from telegram import Bot

    from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI

    runner = asyncio.Runner()
    fake = runner.run(FakeBotAPI().start())
    bot = Bot(TOKEN, base_url=f"{fake.base_url}/bot")
    runner.run(bot.initialize())
    manager = safe_app(
        generator=ScriptedGenerator(echo_thrice, context_window=200_000),
        model={"backend": "scripted", "generation": {"max_new_tokens": 8192}},
        limits={"max_input_chars": 20_000},
    )
    app = runner.run(manager.__aenter__())
    yield runner, fake, bot, app, watch_errors(app)
    runner.run(manager.__aexit__(None, None, None))
    runner.run(bot.shutdown())
    runner.run(fake.close())
    runner.close()


async def telegram_round(fake, bot, app, text: str, group: bool, streaming: str) -> None:
    from telegram import Update

    from adapters.telegram.convert import BotIdentity, Ignored, update_to_event
    from adapters.telegram.outbox import DraftSupport, TelegramOutbox
    from tests.adapters.telegram_fake_server import BOT_ID, BOT_USERNAME

    n = next(_ids)
    chat_id = -(10**6) - n if group else 10**6 + n
    calls_before = len(fake.calls)
    fake.user_message(f"@{BOT_USERNAME} {text}" if group else text, chat_id=chat_id, user_id=10**6 + n)
    update = Update.de_json(fake.updates.pop(), bot)
    event = update_to_event(update, BotIdentity(BOT_ID, BOT_USERNAME))
    if isinstance(event, Ignored):
        return
    interval = None if streaming == "final" else 0.0
    drafts = DraftSupport(True) if streaming == "draft" and not group else None
    outbox = TelegramOutbox(bot, interval=interval, drafts=drafts)
    await app.dispatcher.feed(event, outbox)
    await outbox.aclose()
    calls = fake.calls[calls_before:]
    assert [c.method for c in calls if c.status != 200] == []  # Telegram refused nothing
    assert any(c.method in ("sendMessage", "sendMessageDraft") for c in calls)
    expected = normalize_user_text(event.text, app.settings.limits.max_input_chars).text
    if event.command is None and expected:
        assert await stored_user_turn(app, event.key) == expected


@FUZZ
@given(text=hostile_text, group=st.booleans(), streaming=st.sampled_from(["final", "edit", "draft"]))
def test_hostile_text_through_the_telegram_adapter(telegram, text, group, streaming):
    runner, fake, bot, app, unexpected = telegram
    text = LONE_SURROGATE.sub("", text)  # Telegram delivers UTF-8: no lone surrogates
    text = text[:20_000] if streaming == "final" else text[:300]  # streamed: an HTTP edit per word
    assume(text.strip())  # Telegram delivers no empty text messages
    runner.run(telegram_round(fake, bot, app, text, group, streaming))
    assert unexpected == []


# -- Discord -------------------------------------------------------------------------------


class _Env:
    """What the Discord harness needs of pytest's monkeypatch, for a module-scoped bot."""

    def __init__(self) -> None:
        self.saved: dict[str, str | None] = {}

    def setenv(self, name: str, value: str) -> None:
        self.saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def undo(self) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def discord_bot():
    from tests.adapters.discord_fake_server import FakeDiscord
    from tests.adapters.discord_harness import running_bot

    runner = asyncio.Runner()
    fake = FakeDiscord()
    runner.run(fake.__aenter__())
    events: list = []
    finished: dict[str, asyncio.Event] = {}

    async def mark_finished(app, stack):
        feed = app.dispatcher.feed

        async def feed_and_mark(event, outbox):
            events.append(event)  # as the adapter converted it
            try:
                return await feed(event, outbox)
            finally:
                finished.setdefault(event.event_id, asyncio.Event()).set()

        app.dispatcher.feed = feed_and_mark

    env = _Env()
    manager = running_bot(
        fake, env, replies=echo_thrice, features=[setup_safety, mark_finished], max_new_tokens=1500,
        limits={"max_input_chars": 20_000},
    )
    running = runner.run(manager.__aenter__())
    yield runner, fake, running, events, finished, watch_errors(running.app)
    runner.run(manager.__aexit__(None, None, None))
    runner.run(fake.__aexit__(None, None, None))
    runner.close()
    env.undo()


async def discord_round(fake, running, events, finished, text: str) -> None:
    from tests.adapters.discord_harness import USER_ID

    n = next(_ids)
    channel = 555000000000000000 + n  # a DM: every message reaches the core
    payload = fake.message(channel, USER_ID + n, text)
    event_id = f"discord:message:{payload['id']}"
    done = finished.setdefault(event_id, asyncio.Event())
    calls_before = len(fake.calls)
    await fake.dispatch("MESSAGE_CREATE", payload)
    await asyncio.wait_for(done.wait(), 60)
    bodies = [c.body or {} for c in fake.calls[calls_before:] if c.method in ("POST", "PATCH") and "messages" in c.path]
    assert bodies, "the bot answered nothing"
    for body in bodies:
        content = body.get("content", "")
        assert content.strip() and len(content) <= 2000 and not LONE_SURROGATE.search(content)
        assert body["allowed_mentions"]["parse"] == []  # a reply can never ping @everyone, roles or users
    [event] = [e for e in events if e.event_id == event_id]
    expected = normalize_user_text(event.text, running.app.settings.limits.max_input_chars).text
    if event.command is None and expected:
        assert await stored_user_turn(running.app, event.key) == expected


@FUZZ
@given(text=hostile_text)
def test_hostile_text_through_the_discord_adapter(discord_bot, text):
    runner, fake, running, events, finished, unexpected = discord_bot
    text = LONE_SURROGATE.sub("", text)[:4000]  # UTF-8 JSON on the gateway; Discord's longest message
    assume(text.strip())  # Discord delivers no empty messages
    runner.run(discord_round(fake, running, events, finished, text))
    assert unexpected == []
