"""MCP servers as tool sources: a stdio server written with the SDK (tests/tools/mcp_server.py),
started by the bot, its tool called end to end; restarts, allow lists, env names, a broken server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from core.tools.settings import McpServer
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.tools.helpers import sent_messages, text_reply, tool_bot, tool_reply

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def server_entry(**extra) -> dict:
    return {"name": "calc", "command": sys.executable, "args": [SERVER], **extra}


async def test_a_stdio_server_s_tool_is_called_end_to_end(monkeypatch):
    monkeypatch.setenv("MCP_TEST_TOKEN", "tok-123456")
    entry = server_entry(allow=["add", "token_seen"], env=["MCP_TEST_TOKEN"])
    async with tool_bot(mcp={"servers": [entry]}) as (bot, server):
        server.replies += [tool_reply(("add", {"a": 2, "b": 40}), ("token_seen", {})), text_reply("42.")]
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("what is 2 + 40?"), outbox)
        assert outbox.texts == ["42."]
        tools = [m["content"] for m in sent_messages(server, 1) if m["role"] == "tool"]
        assert tools == ["42", "set"]
        offered = {t["function"]["name"] for t in [r for r in server.requests if r["json"]][0]["json"]["tools"]}
        assert offered == {"add", "token_seen"}  # "hidden" and "die" are not in the allow list
        admin = RecordingOutbox()
        await bot.dispatcher.feed(make_event("/admin tools", "telegram:999"), admin)
        assert "add (mcp:calc, on)" in admin.last and "calc (running, 2 tools, 0 restarts)" in admin.last


async def test_arguments_are_checked_against_the_server_s_schema():
    async with tool_bot(mcp={"servers": [server_entry(allow=["add"])]}) as (bot, server):
        server.replies += [tool_reply(("add", {"a": "two", "b": 1})), text_reply("Hm.")]
        await bot.dispatcher.feed(make_event("add"), RecordingOutbox())
        (told,) = [m["content"] for m in sent_messages(server, 1) if m["role"] == "tool"]
        assert told.startswith("error: invalid arguments: a: 'two' is not of type 'integer'")


async def test_a_server_that_dies_is_restarted_and_its_tools_come_back():
    registry = ToolRegistry()
    config = McpServer(name="calc", command=sys.executable, args=(SERVER,), allow=("add", "die"))
    async with McpServers(registry, [config]) as servers:
        (supervised,) = servers.servers
        assert supervised.state == "running" and registry.get("env") is None
        die = registry.get("die")
        try:
            await die.handler(None)
        except Exception:
            pass  # the process is gone before it answers
        await asyncio.wait_for(_wait_down(supervised), 30)
        await asyncio.wait_for(supervised.up.wait(), 30)
        assert supervised.restarts == 1
        assert await registry.get("add").handler(None, a=1, b=2) == "3"


async def _wait_down(supervised) -> None:
    while supervised.up.is_set():
        await asyncio.sleep(0.05)


async def test_a_server_that_prints_garbage_and_hangs_is_isolated_and_the_bot_answers():
    entry = server_entry(args=[SERVER, "--garbage"], start_timeout_s=2, max_restarts=0)
    missing = {"name": "nowhere", "command": "/nonexistent/mcp-server", "max_restarts": 0}
    async with tool_bot(mcp={"servers": [entry, missing]}) as (bot, server):
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("hello"), outbox)
        assert outbox.texts == ["ok"]
        admin = RecordingOutbox()
        await bot.dispatcher.feed(make_event("/admin tools", "telegram:999"), admin)
        assert "calc (stopped, 0 tools, 0 restarts): no answer within 2 s" in admin.last
        assert "nowhere (stopped, 0 tools, 0 restarts)" in admin.last
