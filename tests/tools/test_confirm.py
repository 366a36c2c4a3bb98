"""Calls of ``confirm`` tools wait for /confirm in the store: across processes (a second app on
the same database), and refused when expired, someone else's or already used (audited)."""

from __future__ import annotations

import json
import time

from core.events import ChatKind
from core.storage.sqlite import SQLiteStore
from core.tools.spec import ToolContext, make_tool
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.tools.helpers import text_reply, tool_bot, tool_reply

ran: list[tuple[str, str]] = []


async def wipe(ctx: ToolContext, target: str) -> str:
    ran.append((ctx.user_id, target))
    return f"wiped {target}"


WIPE = make_tool(wipe, "wipe", "Wipe a cache", confirm=True)


async def say(bot, text, user="telegram:1", **event) -> str:
    outbox = RecordingOutbox()
    await bot.dispatcher.feed(make_event(text, user, **event), outbox)
    return outbox.last


async def ask_for_wipe(bot, server, user="telegram:1", **event) -> None:
    server.replies += [tool_reply(("wipe", {"target": "缓存"})), text_reply("Send /confirm to go ahead.")]
    assert await say(bot, "wipe my cache", user, **event) == "Send /confirm to go ahead."
    assert ran == []


async def denied(store, result: str) -> list:
    entries = await store.find_audit(action="tool:confirm", outcome="denied")
    return [e for e in entries if e.detail.get("result") == result]


async def test_a_confirmation_held_by_one_process_is_approved_in_the_next(tmp_path):
    ran.clear()
    database = str(tmp_path / "bot.sqlite3")
    async with tool_bot(WIPE, store=SQLiteStore(database)) as (bot, server):
        await ask_for_wipe(bot, server)
    async with tool_bot(WIPE, store=SQLiteStore(database)) as (bot, server):  # a restart, or the next `personabot ask`
        assert await say(bot, "/confirm") == "Done (wipe): wiped 缓存"
        assert ran == [("telegram:1", "缓存")]
        assert await say(bot, "/confirm") == "That action was already approved."
        assert ran == [("telegram:1", "缓存")]
        assert len(await denied(bot.store, "used")) == 1
        (done,) = await bot.store.find_audit(action="tool:confirm", outcome="ok")
        assert done.actor == "telegram:1" and done.target == "core:wipe"


async def test_an_expired_confirmation_is_refused_and_audited():
    ran.clear()
    async with tool_bot(WIPE) as (bot, server):
        await ask_for_wipe(bot, server)
        held = json.loads(await bot.store.get_setting("tools:telegram:1", "confirm"))
        assert held["tool"] == "wipe" and held["arguments"] == {"target": "缓存"} and held["until"] > time.time()
        held["until"] = time.time() - 1  # ten minutes later
        await bot.store.set_setting("tools:telegram:1", "confirm", json.dumps(held))
        assert await say(bot, "/confirm") == "That request has expired. Please ask again."
        assert ran == [] and len(await denied(bot.store, "expired")) == 1
        assert await say(bot, "/confirm") == "There is nothing waiting for your approval."


async def test_another_member_s_confirm_in_a_group_is_refused_and_audited():
    ran.clear()
    group = {"chat": "-100", "kind": ChatKind.GROUP}
    async with tool_bot(WIPE) as (bot, server):
        await ask_for_wipe(bot, server, **group)
        reply = await say(bot, "/confirm", "telegram:2", **group)
        assert reply == "That action waits for the approval of the person who asked for it."
        assert ran == []
        (entry,) = await denied(bot.store, "not theirs")
        assert entry.actor == "telegram:2"
        assert await say(bot, "/confirm", **group) == "Done (wipe): wiped 缓存"
        assert ran == [("telegram:1", "缓存")]
        assert await say(bot, "/confirm", "telegram:2", **group) == "There is nothing waiting for your approval."


async def test_a_held_call_is_exported_with_the_user_and_forgotten_with_them():
    ran.clear()
    async with tool_bot(WIPE) as (bot, server):
        await ask_for_wipe(bot, server)
        exported = await bot.store.export_user("telegram:1")
        held = [s for s in exported["settings"] if s["name"] == "confirm"]
        assert {s["scope"] for s in held} == {"tools:telegram:1", "tools:chat:telegram:1"}
        await bot.store.forget_user("telegram:1")
        assert await bot.store.get_setting("tools:telegram:1", "confirm") is None
        assert await say(bot, "/confirm") == "There is nothing waiting for your approval."
