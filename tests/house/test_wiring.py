"""The composition root: an App with no features, with each feature alone, the default
bot's pinned chain, and the bad inputs of stages and anchors."""

from __future__ import annotations

import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bots.app_factory import bot_app
from core.bootstrap import FEATURES
from core.dispatcher import Context, Handler
from core.errors import ConfigError
from core.generation.scripted import ScriptedGenerator
from core.runtime import Runtime
from core.seams import MiddlewareChain
from core.settings import load_bot_settings
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import HashingEmbedder, bot_settings, plugin_app, write_plugin

ROOT = Path(__file__).resolve().parents[2]
CORE_CHAIN = [
    "recovery:dedupe", "access:drop_banned", "access:locale", "limits:merge_bursts", "limits:rate_limit", "input:input_limits"
]


def ports(replies=("Hello!",)) -> dict:
    return {"store": SQLiteStore(":memory:"), "generator": ScriptedGenerator(list(replies)), "embedder": HashingEmbedder()}


async def test_a_bot_without_features_has_the_core_chain_and_answers():
    async with bot_app(make_settings(), features=[], **ports()) as bot:
        assert bot.dispatcher.describe() == [*CORE_CHAIN, "route:command", "route:chat"]
        assert bot.services.personalization is None and bot.services.plugins is None
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("hi"), outbox)
        assert outbox.texts == ["Hello!"]


@pytest.mark.parametrize("name", list(FEATURES))
async def test_each_feature_alone_attaches_through_the_seams_and_the_bot_answers(name):
    async with bot_app(make_settings(), features=[FEATURES[name]], **ports()) as bot:
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("hello there"), outbox)
        await bot.dispatcher.feed(make_event("/help"), outbox)
        assert outbox.texts[0] == "Hello!" and outbox.texts[1].startswith("Commands:")
        assert (bot.services.personalization is not None) == (name == "personalization")
        assert (bot.services.plugins is not None) == (name == "plugins")


async def test_the_default_bot_chain_is_pinned():
    settings = load_bot_settings(ROOT / "bots" / "demo.toml").model_copy(update={"storage": make_settings().storage})
    async with bot_app(settings, **ports()) as bot:
        assert bot.dispatcher.describe() == [
            "recovery:dedupe",
            "access:drop_banned",
            "access:locale",
            "limits:merge_bursts",
            "limits:rate_limit",
            "input:input_limits",
            "moderation:moderate_input",
            "moderation:audit_commands",
            "feature:track_turns",
            "route:command",
            "route:chat",
        ]


def test_stages_and_anchors_are_checked_when_the_chain_is_built():
    async def mw(ctx: Context, call_next: Handler) -> None:
        await call_next(ctx)

    chain = MiddlewareChain()
    with pytest.raises(ConfigError, match="unknown stage 'late'"):
        chain.add("late", "x", mw)
    chain.add("input", "first", mw)
    chain.add("input", "second", mw, before="first")
    chain.add("recovery", "outer", mw)
    assert chain.describe() == ["recovery:outer", "input:second", "input:first"]
    chain.add("feature", "lost", mw, after="nowhere")
    with pytest.raises(ConfigError, match="anchor 'nowhere'"):
        chain.resolve()
    with pytest.raises(ConfigError, match="no middleware named 'missing'"):
        chain.replace("missing", mw)


async def test_a_feature_naming_an_unknown_anchor_stops_the_start():
    async def misplaced(bot: Runtime, stack: AsyncExitStack) -> None:
        async def mw(ctx: Context, call_next: Handler) -> None:
            await call_next(ctx)

        bot.seams.middlewares.add("input", "late", mw, after="rate_limit")  # rate_limit is in "limits"

    with pytest.raises(ConfigError, match="anchor 'rate_limit' is not a middleware in stage 'input'"):
        async with bot_app(make_settings(), features=[misplaced], **ports()):
            pass


def test_a_bot_file_naming_an_unknown_feature_exits_2_naming_file_and_field(tmp_path):
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "f"\nfeatures = ["safety", "telepathy"]\n[model]\nbackend = "scripted"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "ask", "hi", "--bot", str(bot)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert f"{bot}: features: unknown feature(s) ['telepathy']" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_plugin_middleware_in_an_unknown_stage_is_refused_and_the_bot_starts(tmp_path):
    write_plugin(tmp_path, "odd", '''
        from core.plugins import Plugin

        plugin = Plugin("odd", description="places its middleware nowhere")

        @plugin.middleware(stage="afterwards")
        async def late(turn, call_next):
            await call_next()
    ''')
    write_plugin(tmp_path, "anchored", '''
        from core.plugins import Plugin

        plugin = Plugin("anchored", description="anchors on a middleware that does not exist")

        @plugin.middleware(stage="input", after="spellcheck")
        async def late(turn, call_next):
            await call_next()
    ''')
    settings = bot_settings(tmp_path, {"enabled": ["odd", "anchored"], "paths": {"odd": "odd.py", "anchored": "anchored.py"}})
    async with plugin_app(settings) as bot:
        statuses = {status.name: status for status in bot.services.plugins.describe()}
        assert statuses["odd"].state == "refused" and "unknown stage 'afterwards'" in statuses["odd"].reason
        assert statuses["anchored"].state == "refused" and "'spellcheck' names no middleware" in statuses["anchored"].reason
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("hi"), outbox)
        assert outbox.texts == ["Model reply."]
