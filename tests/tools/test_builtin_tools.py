"""The bundled features' tools through the tool loop: reminders, knowledge search, memories,
recommendations, and a third-party plugin's ``@plugin.tool``."""

from __future__ import annotations

import json

from core.personalization import setup_personalization
from core.plugins import setup_plugins
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import HashingEmbedder, write_plugin
from tests.tools.helpers import completions, sent_messages, text_reply, tool_bot, tool_reply


async def feed(bot, text, user="telegram:1"):
    outbox = RecordingOutbox()
    await bot.dispatcher.feed(make_event(text, user), outbox)
    return outbox


def told(server, index):
    return [m["content"] for m in sent_messages(server, index) if m["role"] == "tool"]


async def test_reminders_are_created_listed_and_cancelled_by_the_model():
    async with tool_bot(plugins={"enabled": ["reminders"]}, extra_features=[setup_plugins]) as (bot, server):
        server.replies += [tool_reply(("reminder_create", {"request": "remind me in 20 minutes to stretch"})), text_reply("Set.")]
        assert (await feed(bot, "set a reminder: stretch, in 20 minutes")).texts == ["Set."]
        (job,) = await bot.store.list_jobs("reminders", user_id="telegram:1")
        assert job.payload["text"] == "stretch" and told(server, 1)[0].startswith("OK, I'll remind you in 20 min")
        server.replies += [tool_reply(("reminder_list", {})), text_reply("One.")]
        await feed(bot, "what reminders do I have?")
        assert f"#{job.id}" in told(server, 3)[0]
        server.replies += [tool_reply(("reminder_cancel", {"reminder_id": job.id + 100})),
                           tool_reply(("reminder_cancel", {"reminder_id": job.id})), text_reply("Gone.")]
        await feed(bot, "cancel it")
        assert told(server, 5) == [f"error: the tool reminder_cancel failed: You have no reminder #{job.id + 100}."]
        assert told(server, 6)[-1].startswith(f"Cancelled reminder #{job.id}")
        assert await bot.store.list_jobs("reminders", user_id="telegram:1") == []


async def test_knowledge_search_returns_passages_with_sources(tmp_path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "refunds.md").write_text("# Refunds\n\nRefunds take five working days after approval.\n", encoding="utf-8")
    plugins = {"enabled": ["knowledge"], "knowledge": {"folder": str(tmp_path / "kb"), "min_score": 0.0}}
    async with tool_bot(plugins=plugins, extra_features=[setup_plugins], embedder=HashingEmbedder()) as (bot, server):
        server.replies += [tool_reply(("knowledge_search", {"query": "how long do refunds take"})), text_reply("Five days.")]
        await feed(bot, "how long do refunds take?")
        (result,) = told(server, 1)
        found = json.loads(result)
        assert found[0]["source"].startswith("refunds.md") and "five working days" in found[0]["text"]


async def test_memory_tools_touch_only_the_asking_users_memories():
    async with tool_bot(extra_features=[setup_personalization], embedder=HashingEmbedder()) as (bot, server):
        offered = None
        server.replies += [tool_reply(("memory_save", {"subject": "pet", "text": "我有一只猫叫小白"})), text_reply("Noted.")]
        await feed(bot, "remember that I have a cat")
        offered = {t["function"]["name"] for t in completions(server)[0]["tools"]}
        assert {"memory_recall", "memory_save", "recommend"} <= offered
        assert [m.text for m in await bot.store.memories("telegram:1")] == ["我有一只猫叫小白"]
        server.replies += [tool_reply(("memory_recall", {"query": "猫"})), text_reply("Nothing.")]
        await feed(bot, "what pet do I have?", user="telegram:2")
        assert told(server, 3) == ["[]"]
        server.replies += [tool_reply(("memory_recall", {"query": "猫"})), text_reply("A cat.")]
        await feed(bot, "what pet do I have?")
        assert json.loads(told(server, 5)[0]) == [{"subject": "pet", "text": "我有一只猫叫小白"}]


async def test_a_plugin_tool_gets_a_turn_and_its_failure_is_counted(tmp_path):
    write_plugin(tmp_path, "echo", '''
        from core.plugins import Plugin

        plugin = Plugin("echo")

        @plugin.tool("echo_back", "Say the words back", groups=False)
        async def echo_back(turn, words: str, times: int = 1) -> str:
            if words == "boom":
                raise RuntimeError("exploded")
            return f"{turn.user.qualified}: " + " ".join([words] * times)
    ''')
    plugins = {"enabled": ["echo"], "paths": {"echo": str(tmp_path / "echo.py")}}
    async with tool_bot(plugins=plugins, extra_features=[setup_plugins]) as (bot, server):
        server.replies += [tool_reply(("echo_back", {"words": "hi", "times": 2}), ("echo_back", {"words": "boom"})),
                           text_reply("Done.")]
        await feed(bot, "echo")
        assert told(server, 1) == ["telegram:1: hi hi", "error: the tool echo_back failed: PluginError"]
        assert "echo_back (plugin:echo, on) [no groups]" in (await feed(bot, "/admin tools", user="telegram:999")).last
