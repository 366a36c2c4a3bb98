"""The privacy contract: /export and /forget reach what plugins keep about a user."""

from __future__ import annotations

import json

import pytest

from core.errors import InputRejected, PluginError
from core.events import ConversationKey
from core.personalization import setup_personalization
from core.plugins import setup_plugins
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import HashingEmbedder, bot_settings, write_plugin

USER, OTHER = "telegram:1", "telegram:2"

NOTES = '''
from core.plugins import ArgSpec, Plugin

plugin = Plugin("notes", stores_user_data=True)

@plugin.command("note", "Keep a note", args=(ArgSpec("text", "the note", rest=True),))
async def note(turn):
    await turn.plugin.storage.user(turn.user).set("note", turn.args[0] if turn.args else "")
    return "noted"

@plugin.export_user
async def export(ctx, user_id):
    return {"note": await ctx.storage.user(user_id).get("note")}

@plugin.forget_user
async def forget(ctx, user_id):
    if user_id == "telegram:666":
        raise RuntimeError("cannot forget")
    return await ctx.storage.user(user_id).forget()
'''


def settings(tmp_path):
    write_plugin(tmp_path, "notes", NOTES)
    return bot_settings(tmp_path, {"enabled": ["notes", "reminders", "lessons"], "paths": {"notes": "notes.py"}})


async def full_app(tmp_path):
    from bots.app_factory import bot_app
    from core.generation.scripted import ScriptedGenerator
    from core.storage.sqlite import SQLiteStore

    return bot_app(
        settings(tmp_path),
        store=SQLiteStore(":memory:"),
        generator=ScriptedGenerator(["Model reply."]),
        embedder=HashingEmbedder(),
        features=[setup_personalization, setup_plugins],
    )


async def say(app, text: str, user: str = USER) -> RecordingOutbox:
    outbox = RecordingOutbox()
    await app.dispatcher.feed(make_event(text, user=user), outbox)
    return outbox


async def leave_traces(app, user: str) -> None:
    await say(app, "/note 我的秘密", user)
    await say(app, "remind me in 2 hours to call the dentist", user)
    await say(app, "/lesson next", user)


async def plugin_rows(app, user: str) -> int:
    exported = await app.store.export_user(user)
    return len(exported["plugin_data"]) + len(exported["plugin_jobs"])


async def test_export_holds_what_plugins_keep_and_forget_deletes_it(tmp_path):
    async with await full_app(tmp_path) as app:
        await leave_traces(app, USER)
        await leave_traces(app, OTHER)
        stored = await app.store.export_user(USER)
        assert {row["plugin"] for row in stored["plugin_data"]} == {"notes", "lessons"}
        assert [job["payload"]["text"] for job in stored["plugin_jobs"]] == ["call the dentist"]
        assert await app.services.plugins.export_user(USER) == {
            "notes": {"note": "我的秘密"},
            "reminders": [{"id": 1, "at": stored["plugin_jobs"][0]["run_at"], "chat": USER, "text": "call the dentist"}],
            "lessons": {"completed": [], "current": "fractions-1", "question": None, "answered": 0, "correct": 0},
        }
        await say(app, "/forget", USER)
        assert (await say(app, "/forget confirm", USER)).texts == ["Done. I deleted everything I kept about you."]
        assert await plugin_rows(app, USER) == 0
        assert await app.services.plugins.export_user(USER) == {"notes": {"note": None}, "reminders": [], "lessons": None}
        assert await plugin_rows(app, OTHER) == 3  # someone else's data stays


async def test_export_json_of_the_personalization_feature_carries_plugin_rows(tmp_path):
    async with await full_app(tmp_path) as app:
        await leave_traces(app, USER)
        outbox = RecordingOutbox()
        sent = []
        original = outbox.send

        async def keep(key: ConversationKey, reply):
            sent.append(reply)
            return await original(key, reply)

        outbox.send = keep  # type: ignore[method-assign]
        await app.dispatcher.feed(make_event("/export", user=USER), outbox)
        data = json.loads(sent[-1].attachment.data)
        identity = data["identities"][0]
        assert any(row["value"] == "我的秘密" for row in identity["plugin_data"])
        assert identity["plugin_jobs"][0]["payload"]["text"] == "call the dentist"


async def test_the_managers_forget_runs_every_plugins_forget_and_clears_framework_rows(tmp_path):
    async with await full_app(tmp_path) as app:
        await leave_traces(app, USER)
        counts = await app.services.plugins.forget_user(USER)
        assert counts == {"notes": 1, "reminders": 1, "lessons": 1}
        assert await plugin_rows(app, USER) == 0


async def test_a_failing_plugin_forget_is_reported_after_the_others_ran(tmp_path):
    async with await full_app(tmp_path) as app:
        await leave_traces(app, "telegram:666")
        with pytest.raises(PluginError, match="plugins notes failed") as error:
            await app.services.plugins.forget_user("telegram:666")
        assert "could not be deleted" in error.value.user_message
        assert await plugin_rows(app, "telegram:666") == 0  # framework rows went anyway


async def test_plugin_values_round_trip_any_text_and_refuse_what_json_cannot_hold(tmp_path):
    async with await full_app(tmp_path) as app:
        store = app.store
        value = {"text": "你好 👋 \ud800 \x00", "n": [1, 2.5, None, True]}
        await store.plugin_set("notes", "k", value, USER)
        assert await store.plugin_get("notes", "k", USER) == value
        assert await store.plugin_get("notes", "k") is None  # the plugin-wide namespace is separate
        await store.plugin_set("notes", "k:1", 1)
        await store.plugin_set("notes", "k:2", 2)
        await store.plugin_set("notes", "other", 3)
        assert await store.plugin_items("notes", prefix="k:") == {"k:1": 1, "k:2": 2}
        with pytest.raises(InputRejected, match="not JSON data"):
            await store.plugin_set("notes", "bad", {1, 2})
        with pytest.raises(InputRejected, match="not JSON data"):
            await store.plugin_set("notes", "nan", float("nan"))
        with pytest.raises(InputRejected, match="key must be 1-200"):
            await store.plugin_set("notes", "", 1)
        await store.plugin_set("notes", "k:1", None)
        assert await store.plugin_items("notes", prefix="k:") == {"k:2": 2}
