"""MCP over streamable HTTP: a server written with the SDK (tests/tools/mcp_http_server.py),
served by uvicorn on 127.0.0.1, its tool called through the tool loop; its auth header comes
from an environment variable the bot file names; a server that is down at start is
reported and the bot runs without it."""

from __future__ import annotations

import logging

from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.tools.helpers import completions, sent_messages, text_reply, tool_bot, tool_reply
from tests.tools.mcp_http_server import free_port, serving

TOKEN = "http-secret-7f3a9c"


def entry(url: str, **extra) -> dict:
    return {"name": "math", "url": url, "headers": {"Authorization": "MCP_MATH_AUTH"}, "max_restarts": 0, **extra}


async def test_a_streamable_http_server_s_tool_is_called_through_the_tool_loop(monkeypatch, caplog):
    monkeypatch.setenv("MCP_MATH_AUTH", f"Bearer {TOKEN}")
    caplog.set_level(logging.DEBUG)
    async with serving(TOKEN) as url:
        async with tool_bot(mcp={"servers": [entry(url, allow=["multiply"])]}) as (bot, server):
            server.replies += [tool_reply(("multiply", {"a": 6, "b": 7})), text_reply("六乘七是 42。")]
            outbox = RecordingOutbox()
            await bot.dispatcher.feed(make_event("6 × 7?"), outbox)
            assert outbox.texts == ["六乘七是 42。"]
            assert [m["content"] for m in sent_messages(server, 1) if m["role"] == "tool"] == ["42"]
            assert {t["function"]["name"] for t in completions(server)[0]["tools"]} == {"multiply"}
            admin = RecordingOutbox()
            await bot.dispatcher.feed(make_event("/admin tools", "telegram:999"), admin)
            assert "multiply (mcp:math, on)" in admin.last and "math (running, 1 tools, 0 restarts)" in admin.last
    assert TOKEN not in caplog.text


async def test_a_wrong_or_missing_auth_header_is_reported_and_the_bot_runs_without_it(monkeypatch):
    monkeypatch.delenv("MCP_MATH_AUTH", raising=False)
    async with serving(TOKEN) as url:
        async with tool_bot(mcp={"servers": [entry(url, start_timeout_s=5)]}) as (bot, server):
            outbox = RecordingOutbox()
            await bot.dispatcher.feed(make_event("hello"), outbox)
            assert outbox.texts == ["ok"] and "tools" not in completions(server)[0]
            admin = RecordingOutbox()
            await bot.dispatcher.feed(make_event("/admin tools", "telegram:999"), admin)
            assert "math (stopped, 0 tools, 0 restarts): " in admin.last and "401" in admin.last


async def test_a_server_that_is_down_at_start_is_reported_and_the_bot_runs_without_it(monkeypatch, caplog):
    monkeypatch.setenv("MCP_MATH_AUTH", f"Bearer {TOKEN}")
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    async with tool_bot(mcp={"servers": [entry(url, start_timeout_s=5)]}) as (bot, server):
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("hello"), outbox)
        assert outbox.texts == ["ok"]
        admin = RecordingOutbox()
        await bot.dispatcher.feed(make_event("/admin tools", "telegram:999"), admin)
        assert "math (stopped, 0 tools, 0 restarts): " in admin.last
    assert "mcp server math did not start" in caplog.text


def test_headers_name_environment_variables_and_only_url_servers_take_them():
    import pytest

    from core.tools.settings import McpServer

    with pytest.raises(ValueError, match="not a name"):
        McpServer(name="x", url="http://h/mcp", headers={"Authorization": "Bearer abc"})
    with pytest.raises(ValueError, match="headers are for a url"):
        McpServer(name="x", command="y", headers={"Authorization": "TOKEN"})
    assert McpServer(name="x", url="http://h/mcp", headers={"X-Api-Key": "API_KEY"}).headers == {"X-Api-Key": "API_KEY"}
