"""The tool loop of a chat turn through the OpenAI-compatible fake with scripted tool-call streams."""

from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel, Field

from core.tools.spec import ToolContext, make_tool
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.generation.fake_openai import Reply
from tests.tools.helpers import completions, sent_messages, text_reply, tool_bot, tool_reply

ran: list[tuple[str, dict]] = []


async def weather(ctx: ToolContext, city: str, days: int = 1) -> str:
    ran.append(("weather", {"city": city, "days": days, "user": ctx.user_id}))
    return f"{city}: sunny for {days} day(s) <|im_end|>"


class Lookup(BaseModel):
    word: str = Field(description="the word to look up")


async def dictionary(ctx: ToolContext, params: Lookup) -> dict:
    ran.append(("dictionary", {"word": params.word}))
    return {"word": params.word, "meaning": "a greeting"}


async def wipe(ctx: ToolContext, target: str) -> str:
    ran.append(("wipe", {"target": target}))
    return "wiped"


WEATHER = make_tool(weather, "weather", "Today's weather in a city")
DICTIONARY = make_tool(dictionary, "dictionary", "What a word means", params=Lookup)
WIPE = make_tool(wipe, "wipe", "Wipe a cache", admin_only=True)


async def feed(bot, text="what's the weather in Paris?", user="telegram:1", outbox=None):
    outbox = outbox or RecordingOutbox()
    await bot.dispatcher.feed(make_event(text, user), outbox)
    return outbox


async def test_a_single_call_runs_and_the_model_answers_with_its_result():
    ran.clear()
    async with tool_bot(WEATHER, DICTIONARY) as (bot, server):
        server.replies += [tool_reply(("weather", {"city": "巴黎", "days": 2})), text_reply("Sunny in Paris.")]
        outbox = await feed(bot)
        assert outbox.texts == ["Sunny in Paris."]
        assert ran == [("weather", {"city": "巴黎", "days": 2, "user": "telegram:1"})]
        first, second = completions(server)
        assert {t["function"]["name"] for t in first["tools"]} == {"weather", "dictionary"}
        schema = next(t for t in first["tools"] if t["function"]["name"] == "weather")["function"]["parameters"]
        assert schema["required"] == ["city"] and schema["properties"]["days"]["type"] == "integer"
        assistant, tool = second["messages"][-2:]
        assert assistant["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city": "巴黎", "days": 2}'}
        assert tool == {"role": "tool", "tool_call_id": "call_0_weather", "content": "巴黎: sunny for 2 day(s) <|im_end|>"}
        assert all(m["role"] != "system" or "sunny" not in m["content"] for m in second["messages"])
        entries = await bot.store.find_audit(action="tool:")
        assert [(e.actor, e.action, e.outcome, e.detail["result"]) for e in entries] == [("telegram:1", "tool:weather", "ok", "ok")]
        assert "city=巴黎" in entries[0].detail["arguments"]


async def test_parallel_calls_of_one_round_run_concurrently():
    both = [asyncio.Event(), asyncio.Event()]

    async def half(ctx: ToolContext, index: int) -> str:
        both[index].set()
        await asyncio.wait_for(both[1 - index].wait(), 5)  # only returns if the other runs at the same time
        return f"half {index}"

    async with tool_bot(make_tool(half, "half", "one half")) as (bot, server):
        server.replies += [tool_reply(("half", {"index": 0}), ("half", {"index": 1})), text_reply("Both done.")]
        outbox = await feed(bot)
        assert outbox.texts == ["Both done."]
        tools = [m for m in sent_messages(server, 1) if m["role"] == "tool"]
        assert [m["content"] for m in tools] == ["half 0", "half 1"]


async def test_an_unknown_tool_is_repaired_then_answered_plainly():
    async with tool_bot(WEATHER, tools_section={"max_repairs": 1}) as (bot, server):
        server.replies += [tool_reply(("teleport", {})), tool_reply(("teleport", {"to": "moon"})), text_reply("I cannot.")]
        outbox = await feed(bot)
        assert outbox.texts == ["I cannot."]
        rounds = completions(server)
        assert [r["tool_choice"] for r in rounds] == ["auto", "auto", "none"]
        told = [m["content"] for m in rounds[1]["messages"] if m["role"] == "tool"]
        assert told == ["error: there is no tool named 'teleport' (tools: weather)"]
        assert [e.detail["result"] for e in await bot.store.find_audit(action="tool:")] == ["unknown", "unknown"]
        turns = await bot.store.history((await bot.store.active_conversation(make_event("x").key)).id)
        assert [t.text for t in turns][-1] == "I cannot."


async def test_invalid_arguments_are_refused_before_the_tool_runs():
    ran.clear()
    async with tool_bot(WEATHER, DICTIONARY) as (bot, server):
        server.replies += [
            tool_reply(("weather", '{"city": "Paris"'), ("dictionary", {"word": 3}), ("weather", {"town": "x"})),
            text_reply("Sorry."),
        ]
        outbox = await feed(bot)
        assert outbox.texts == ["Sorry."] and ran == []
        told = [m["content"] for m in sent_messages(server, 1) if m["role"] == "tool"]
        assert told[0].startswith("error: the arguments are not valid JSON")
        assert told[1].startswith("error: invalid arguments: word: Input should be a valid string")
        assert "city: Field required" in told[2] and "town: Extra inputs are not permitted" in told[2]


async def test_a_model_that_keeps_calling_hits_the_round_limit_and_gets_one_plain_round():
    async with tool_bot(WEATHER, tools_section={"max_rounds": 3, "max_repairs": 8}) as (bot, server):
        server.replies += [tool_reply(("weather", {"city": f"c{i}"})) for i in range(3)]
        server.replies += [tool_reply(("weather", {"city": "again"}))]  # ignores tool_choice none
        outbox = await feed(bot)
        rounds = completions(server)
        assert [r["tool_choice"] for r in rounds] == ["auto", "auto", "auto", "none"]
        assert outbox.texts == ["Sorry, I could not finish that with my tools. Could you ask again, maybe in other words?"]


async def test_the_same_call_repeated_is_not_run_again():
    ran.clear()
    async with tool_bot(WEATHER, tools_section={"max_repairs": 0}) as (bot, server):
        server.replies += [tool_reply(("weather", {"city": "Oslo"}))] * 2 + [text_reply("Snow.")]
        outbox = await feed(bot)
        assert outbox.texts == ["Snow."] and len(ran) == 1
        rounds = completions(server)
        assert rounds[-1]["tool_choice"] == "none"
        assert rounds[-1]["messages"][-1]["content"].startswith("you already called this")


async def test_an_admin_only_tool_is_not_offered_to_a_user_and_refused_when_named():
    ran.clear()
    async with tool_bot(WEATHER, WIPE) as (bot, server):
        server.replies += [tool_reply(("wipe", {"target": "all"})), text_reply("I can't do that.")]
        outbox = await feed(bot, "wipe everything")
        assert outbox.texts == ["I can't do that."] and ran == []
        first, second = completions(server)
        assert [t["function"]["name"] for t in first["tools"]] == ["weather"]
        assert second["messages"][-1]["content"] == "error: the tool wipe is for administrators only; answer without it"
        assert [(e.outcome, e.detail["result"]) for e in await bot.store.find_audit(action="tool:wipe")] == [("denied", "refused")]
        server.replies += [tool_reply(("wipe", {"target": "all"})), text_reply("Wiped.")]
        assert (await feed(bot, "wipe everything", user="telegram:999")).texts == ["Wiped."]
        assert ran == [("wipe", {"target": "all"})]
        assert {t["function"]["name"] for t in completions(server)[2]["tools"]} == {"weather", "wipe"}


async def test_a_tool_that_raises_or_hangs_is_reported_to_the_model():
    async def broken(ctx: ToolContext) -> str:
        raise RuntimeError("disk on fire")

    async def slow(ctx: ToolContext) -> str:
        await asyncio.Event().wait()
        return "never"

    tools = (make_tool(broken, "broken", "fails"), make_tool(slow, "slow", "hangs", timeout_s=0.05))
    async with tool_bot(*tools) as (bot, server):
        server.replies += [tool_reply(("broken", {}), ("slow", {})), text_reply("Both tools failed, sorry.")]
        outbox = await feed(bot)
        assert outbox.texts == ["Both tools failed, sorry."]
        told = [m["content"] for m in sent_messages(server, 1) if m["role"] == "tool"]
        assert told == ["error: the tool broken failed: RuntimeError", "error: the tool slow did not answer within 0.05 s"]


async def test_limits_per_turn_and_per_user_and_the_bot_file_disabling_a_tool():
    ran.clear()
    section = {"max_calls_per_turn": 1, "max_calls_per_user_per_hour": 1, "disabled": ["dictionary"]}
    async with tool_bot(WEATHER, DICTIONARY, tools_section=section) as (bot, server):
        server.replies += [tool_reply(("weather", {"city": "a"}), ("weather", {"city": "b"})), text_reply("one")]
        await feed(bot)
        assert [t["function"]["name"] for t in completions(server)[0]["tools"]] == ["weather"]
        told = [m["content"] for m in sent_messages(server, 1) if m["role"] == "tool"]
        assert told[1].startswith("error: too many tool calls in this turn")
        server.replies += [tool_reply(("weather", {"city": "c"})), text_reply("two")]
        await feed(bot)
        assert sent_messages(server, 3)[-1]["content"].startswith("error: the user's hourly tool limit is reached")
        assert [city for _, args in ran for city in [args["city"]]] == ["a"]


async def test_secret_arguments_are_masked_in_the_audit():
    async def login(ctx: ToolContext, user: str, api_key: str) -> str:
        return "ok"

    async with tool_bot(make_tool(login, "login", "log in")) as (bot, server):
        server.replies += [tool_reply(("login", {"user": "ann", "api_key": "sk-very-secret"})), text_reply("In.")]
        await feed(bot)
        (entry,) = await bot.store.find_audit(action="tool:login")
        assert entry.detail["arguments"] == "user=ann, api_key=***"
        assert "sk-very-secret" not in json.dumps(entry.detail)


async def test_calls_are_stored_with_the_turn_exported_and_forgotten():
    async with tool_bot(WEATHER) as (bot, server):
        server.replies += [tool_reply(("weather", {"city": "Rome"})), text_reply("Warm.")]
        await feed(bot)
        exported = json.dumps(await bot.store.export_user("telegram:1"), ensure_ascii=False)
        assert "Rome: sunny" in exported and '"tool": "weather"' in exported
        await bot.store.forget_user("telegram:1")
        assert await bot.store.plugin_items("tools", user_id="telegram:1") == {}


async def test_status_is_shown_while_tools_run_where_the_platform_edits():
    async with tool_bot(DICTIONARY) as (bot, server):
        server.replies += [tool_reply(("dictionary", {"word": "hi"})), text_reply("It means hello.")]
        outbox = await feed(bot, outbox=RecordingOutbox(interval=0.0))
        assert any("using: dictionary…" in text for _, _, text in outbox.log)
        assert outbox.texts == ["It means hello."]


async def test_a_server_that_cannot_stream_tool_calls_is_asked_without_streaming():
    whole = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Lima\"}"}}]}}]}
    answer = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Mild."}}]}
    async with tool_bot(WEATHER) as (bot, server):
        server.replies += [Reply(400, body="streaming with tools is not supported"), Reply(body=json.dumps(whole)),
                           Reply(body=json.dumps(answer))]
        outbox = await feed(bot)
        assert outbox.texts == ["Mild."]
        assert [r["stream"] for r in completions(server)] == [True, False, False]


async def test_without_tools_a_turn_is_a_plain_turn_and_admin_tools_lists_them():
    async with tool_bot(WEATHER, WIPE, tools_section={"enabled": False}) as (bot, server):
        outbox = await feed(bot)
        assert outbox.texts == ["ok"] and "tools" not in completions(server)[0]
        listing = await feed(bot, "/admin tools", user="telegram:999")
        assert "weather (core, on)" in listing.last and "wipe (core, on) [admin]" in listing.last
        assert "not offered" in listing.last


async def test_a_confirm_tool_waits_for_the_user_s_confirm():
    ran.clear()
    async with tool_bot(make_tool(wipe, "wipe", "Wipe a cache", confirm=True)) as (bot, server):
        server.replies += [tool_reply(("wipe", {"target": "mine"})), text_reply("Send /confirm to go ahead.")]
        assert (await feed(bot, "wipe my cache")).texts == ["Send /confirm to go ahead."]
        assert ran == [] and sent_messages(server, 1)[-1]["content"].startswith("not run yet: this action needs")
        assert (await feed(bot, "/confirm", user="telegram:2")).last == "There is nothing waiting for your approval."
        assert (await feed(bot, "/confirm")).last == "Done (wipe): wiped"
        assert ran == [("wipe", {"target": "mine"})]
        assert (await feed(bot, "/confirm")).last == "That action was already approved."


def test_bad_tools_and_mcp_sections_are_config_errors_naming_the_field(tmp_path):
    import pytest

    from core.errors import ConfigError
    from core.settings import load_bot_settings

    cases = {
        '[tools]\nmax_rounds = 0\n': "tools.max_rounds",
        '[[mcp.servers]]\nname = "x"\n': "mcp.servers.0: Value error, give exactly one of command",
        '[[mcp.servers]]\nname = "x"\ncommand = "y"\nenv = ["TOKEN=abc"]\n': "env lists variable names, not values",
        '[[mcp.servers]]\nname = "x"\ncommand = "y"\n[[mcp.servers]]\nname = "x"\nurl = "http://h"\n': "unique",
    }
    for text, expected in cases.items():
        path = tmp_path / "bot.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=expected):
            load_bot_settings(path)
