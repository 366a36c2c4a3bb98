"""A turn's tool calls and results are visible where transcripts are shown: the web console's
conversation page and its JSON export (aiohttp test client), the local console after the
reply; and they go with the user's data (/export) and are deleted on /forget."""

from __future__ import annotations

import io
import json
import re

from aiohttp.test_utils import TestClient, TestServer

from adapters.console.adapter import console_event, serve, tool_transcript
from core.events import ConversationKey
from core.tools.spec import ToolContext, make_tool
from core.web.app import standalone_app
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.tools.helpers import text_reply, tool_bot, tool_reply
from tests.web.support import TOKEN, console_app

P = "/console"


async def weather(ctx: ToolContext, city: str) -> str:
    return f"{city}: <b>sunny</b>, 晴"


WEATHER = make_tool(weather, "weather", "Today's weather in a city")


async def weather_turn(bot, server, user="telegram:1") -> None:
    server.replies += [tool_reply(("weather", {"city": "巴黎"}), ("nowhere", {})), text_reply("Sunny in Paris.")]
    outbox = RecordingOutbox()
    await bot.dispatcher.feed(make_event("weather in Paris?", user), outbox)
    assert outbox.texts == ["Sunny in Paris."]


async def signed_in(store) -> TestClient:
    app, _ = console_app(store)
    client = TestClient(TestServer(standalone_app(app)))
    await client.start_server()
    response = await client.post(f"{P}/signin", data={"token": TOKEN, "next": f"{P}/"}, allow_redirects=False)
    assert response.status == 303
    return client


async def test_the_web_console_shows_a_turn_s_tool_calls_and_exports_them():
    async with tool_bot(WEATHER) as (bot, server):
        await weather_turn(bot, server)
        conversation = await bot.store.active_conversation(ConversationKey("telegram", "1"))
        client = await signed_in(bot.store)
        try:
            page = await (await client.get(f"{P}/conversations/{conversation.id}")).text()
            exported = json.loads(await (await client.get(f"{P}/conversations/{conversation.id}/export.json")).read())
        finally:
            await client.close()
    (calls,) = re.findall(r'<li class="turn tools" id="tools-(\d+)">(.*?)</ol>', page, re.DOTALL)
    user_turn = next(turn for turn in exported["turns"] if turn["role"] == "user")
    assert int(calls[0]) == user_turn["id"]
    assert "weather(" in calls[1] and "巴黎" in calls[1] and "· ok" in calls[1]
    assert "&lt;b&gt;sunny&lt;/b&gt;, 晴" in calls[1] and "<b>sunny" not in page  # results are untrusted: escaped
    assert "nowhere(" in calls[1] and "· unknown" in calls[1]
    # the tool turn comes between the user's turn and the reply
    assert page.index(f'id="turn-{user_turn["id"]}"') < page.index('class="turn tools"') < page.index("Sunny in Paris.")
    assert [call["tool"] for call in user_turn["tool_calls"]] == ["weather", "nowhere"]
    assert user_turn["tool_calls"][0]["result"] == "巴黎: <b>sunny</b>, 晴"
    assert all("tool_calls" not in turn for turn in exported["turns"] if turn["role"] == "assistant")


async def test_a_turn_without_tools_shows_no_tool_block():
    async with tool_bot(WEATHER) as (bot, server):
        server.replies.append(text_reply("Hello."))
        await bot.dispatcher.feed(make_event("hi"), RecordingOutbox())
        conversation = await bot.store.active_conversation(ConversationKey("telegram", "1"))
        client = await signed_in(bot.store)
        try:
            page = await (await client.get(f"{P}/conversations/{conversation.id}")).text()
        finally:
            await client.close()
    assert "Hello." in page and 'class="turn tools"' not in page


async def test_the_local_console_prints_the_tool_calls_after_the_reply(monkeypatch, capsys):
    async with tool_bot(WEATHER) as (bot, server):
        server.replies += [tool_reply(("weather", {"city": "巴黎"})), text_reply("Sunny in Paris.")]
        monkeypatch.setattr("sys.stdin", io.StringIO("weather in Paris?\n"))
        await serve(bot, "you")
        printed = capsys.readouterr().out
        assert '  [tool weather({"city": "巴黎"}) → ok] 巴黎: <b>sunny</b>, 晴\n' in printed
        plain = console_event("hi", "you")
        server.replies.append(text_reply("Hello."))
        await bot.dispatcher.feed(plain, RecordingOutbox())
        assert await tool_transcript(bot, plain) == []


async def test_tool_calls_are_in_the_user_s_export_and_gone_after_forget():
    from core.personalization.privacy import export_user_data, forget_user_data

    async with tool_bot(WEATHER) as (bot, server):
        await weather_turn(bot, server)
        exported = await export_user_data(bot.store, "telegram:1")
        (identity,) = exported["identities"]
        kept = [row for row in identity["plugin_data"] if row["plugin"] == "tools"]
        assert len(kept) == 1 and kept[0]["value"][0]["tool"] == "weather"
        await forget_user_data(bot.store, "telegram:1", actor="self")
        assert await bot.store.plugin_items("tools", user_id="telegram:1") == {}
