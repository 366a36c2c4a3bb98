"""Plugin isolation: a plugin that calls sys.exit, raises another BaseException or holds the
event loop (sync sleep, CPU loop) at import, setup, in a handler, command, middleware,
prompt contributor, job or tool is disabled with one log line and a note in /admin plugins,
and the bot goes on answering everyone else."""

from __future__ import annotations

import logging

import pytest

from core.dispatcher import Context
from core.events import ConversationKey
from core.plugins.feature import describe_plugins
from core.plugins.watchdog import PluginStalled, Watchdog
from core.plugins.wiring import apology
from core.tools.spec import ToolContext
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import bot_settings, plugin_app, write_plugin

T0 = 1_900_000_000.0  # far in the future: the background scheduler never finds the job due
BAD = '''
import sys
import time
from core.plugins import Plugin, keyword

plugin = Plugin("bad", description="misbehaves on purpose")
WHERE, HOW = {where!r}, {how!r}


class Doom(BaseException):
    pass


def misbehave(here):
    if here != WHERE:
        return
    if HOW == "exit":
        sys.exit(3)
    if HOW == "base":
        raise Doom("not an Exception")
    if HOW == "sleep":
        time.sleep(120)
    if HOW == "spin":
        while True:
            pass
    if HOW == "swallow":  # swallows the interrupts, spins on, then gives up and returns
        for _ in range(3):
            try:
                while True:
                    pass
            except BaseException:
                pass


misbehave("import")


@plugin.on_setup
async def setup(ctx):
    misbehave("setup")


@plugin.command("bad", "Misbehave")
async def bad(turn):
    misbehave("command")
    return "fine"


@plugin.on_message(keyword("trigger"))
async def handler(turn):
    misbehave("handler")
    return "handled"


@plugin.middleware
async def middleware(turn, call_next):
    if turn.text == "through middleware":
        misbehave("middleware")
    await call_next()


@plugin.prompt
async def context(turn, persona):
    if turn.text == "with context":
        misbehave("prompt")
    return []


@plugin.job("tick")
async def tick(ctx, job):
    misbehave("job")


@plugin.tool("probe", "A probe")
async def probe(turn) -> str:
    misbehave("tool")
    return "probed"
'''


def settings_for(tmp_path, where: str, how: str):
    write_plugin(tmp_path, "bad", BAD.format(where=where, how=how))
    return bot_settings(tmp_path, {"enabled": ["bad"], "paths": {"bad": "bad.py"}, "stall_s": 0.3})


async def ask(app, text: str, user: str = "telegram:1") -> str:
    outbox = RecordingOutbox()
    await app.dispatcher.feed(make_event(text, user=user), outbox)
    return "\n".join(outbox.texts)


def plugin_errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "plugin bad" in r.getMessage()]


@pytest.mark.parametrize(("where", "how"), [
    ("import", "exit"), ("import", "base"), ("import", "sleep"), ("import", "spin"),
    ("setup", "exit"), ("setup", "base"), ("setup", "sleep"), ("setup", "spin"),
])
async def test_a_plugin_failing_at_start_is_disabled_and_the_bot_serves(tmp_path, caplog, where, how):
    async with plugin_app(settings_for(tmp_path, where, how)) as app:
        assert await ask(app, "hello", user="telegram:2") == "Model reply."
        (status,) = app.services.plugins.describe()
        assert status.state == "disabled" and ("import" if where == "import" else "setup") in status.reason
        assert "bad: disabled" in describe_plugins(app.services.plugins)
    assert len(plugin_errors(caplog)) == 1


async def run_job(app):
    app.seams.outboxes.register("telegram", RecordingOutbox())
    await app.services.plugins.loaded["bad"].ctx.schedule("tick", at=T0, key=ConversationKey("telegram", "42"))
    await app.services.plugins.scheduler.run_due(T0 + 1)


async def call_tool(app):
    tool = app.seams.tools.get("probe")
    ctx = Context(make_event("use the probe"), RecordingOutbox())
    try:
        return await tool.handler(ToolContext(ctx, is_admin=False))
    except Exception as error:  # the tool runner tells the model the tool failed
        return error


RUNTIME = {
    "command": lambda app: ask(app, "/bad"),
    "handler": lambda app: ask(app, "trigger"),
    "middleware": lambda app: ask(app, "through middleware"),
    "prompt": lambda app: ask(app, "with context"),
    "job": run_job,
    "tool": call_tool,
}


@pytest.mark.parametrize(("where", "how"), [
    ("command", "exit"), ("command", "base"), ("command", "sleep"), ("command", "spin"), ("command", "swallow"),
    ("handler", "exit"), ("handler", "sleep"), ("handler", "spin"),
    ("middleware", "exit"), ("middleware", "sleep"),
    ("prompt", "base"), ("prompt", "spin"),
    ("job", "exit"), ("job", "sleep"), ("job", "spin"),
    ("tool", "exit"), ("tool", "spin"),
])
async def test_a_plugin_failing_while_running_is_disabled_and_the_bot_serves(tmp_path, caplog, where, how):
    async with plugin_app(settings_for(tmp_path, where, how)) as app:
        if where == "command":  # active until it misbehaves
            assert await ask(app, "trigger") == "handled"
        else:
            assert await ask(app, "/bad") == "fine"
        first = await RUNTIME[where](app)
        if where in ("command", "handler"):
            assert first == apology("bad")
        if where in ("middleware", "prompt"):
            assert first == "Model reply."  # the event went on without the plugin
        assert await ask(app, "hello", user="telegram:2") == "Model reply."
        assert await ask(app, "/bad") == apology("bad")  # disabled: its command only apologises
        assert await ask(app, "trigger") == "Model reply."  # its handler no longer matches
        (status,) = app.services.plugins.describe()
        assert status.state == "disabled" and where in status.reason
        assert ("blocked the event loop" in status.reason) == (how in ("sleep", "spin", "swallow"))
        assert app.services.plugins.active_names() == []  # its jobs wait
        assert "bad: disabled" in describe_plugins(app.services.plugins)
    assert len(plugin_errors(caplog)) == 1, plugin_errors(caplog)


async def test_cancellation_and_ctrl_c_are_not_the_plugins_failure():
    import asyncio

    dog = Watchdog(stall_s=60)

    async def cancelled():
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await dog.run("p", cancelled())
    assert dog.running() is None


async def test_bot_code_inside_a_plugin_call_is_not_blamed_on_it():
    import time

    dog = Watchdog(stall_s=0.05)

    async def bot_work():
        time.sleep(0.1)  # the bot itself is slow here
        return "done"

    async def plugin_middleware():
        return await dog.outside(bot_work())

    assert await dog.run("p", plugin_middleware()) == "done"
    with pytest.raises(PluginStalled):
        await dog.run("p", bot_work())
