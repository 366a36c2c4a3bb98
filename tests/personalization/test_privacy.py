"""Export, forget (with confirmation, during a reply in flight), retention and consent."""

import asyncio
import json
import time

from core.events import ConversationKey
from core.personalization.privacy import apply_retention, export_user_data
from core.storage.sqlite import SQLiteStore
from training.data import store_conversations
from tests.personalization.helpers import GatedGenerator, bot_settings, personal_app, rows_naming, say, table_names

USER, OTHER, GROUP = "telegram:1", "telegram:2", "-100"


async def fill(app):
    """Give telegram:1 something in every kind of storage; telegram:2 talks too."""
    await say(app, "Hi! My name is Ann and I live in Berlin.")
    await say(app, "I moved to Paris")  # a superseded memory
    await say(app, "/profile set name Ann")
    await say(app, "/profile set language es")  # no catalog for Spanish: the bot's own words stay English
    await say(app, "/privacy training on")
    await say(app, "I love jazz", chat=GROUP, group=True)
    await say(app, "/recommend 2")  # catalog items seen
    await say(app, "/link")  # a pending link code
    await say(app, "I'm allergic to cats", user=OTHER, chat=GROUP, group=True)
    await say(app, "Ann likes jazz, nice", user=OTHER, chat=GROUP, group=True)


def export_from(outbox):
    (reply,) = outbox.replies
    assert reply.private and reply.attachment is not None
    assert reply.attachment.filename == "export.json" and reply.attachment.mime_type == "application/json"
    return json.loads(reply.attachment.data.decode("utf-8"))


async def test_export_contains_everything_stored_about_the_user(tmp_path):
    db = tmp_path / "bot.db"
    async with personal_app(db) as app:
        await fill(app)
        data = export_from(await say(app, "/export"))
    assert data["user_id"] == USER and data["linked_identities"] == []
    (mine,) = data["identities"]
    assert mine["user"]["message_count"] == 3
    assert mine["profile"]["preferences"] == {"name": "Ann", "language": "es"}
    assert mine["profile"]["consent"] == {"training": True}
    assert mine["profile"]["interest_count"] == 1 and len(mine["profile"]["interest"]) == 512
    assert {m["text"] for m in mine["memories"]} == {"My name is Ann.", "I live in Berlin.", "I live in Paris.", "I like jazz."}
    assert all(len(m["embedding"]) == 512 for m in mine["memories"])
    assert {s["name"] for s in mine["settings"]} >= {"catalog_seen", "link_code"}
    assert any(e["action"] == "privacy training" for e in mine["audit"])
    exported_texts = {m["text"] for m in mine["messages"]}
    # Every row of every table that names the user is in the export.
    for table, rows in rows_naming(db, [USER]).items():
        if table == "messages":
            assert {row[4] for row in rows} <= exported_texts
        elif table == "memories":
            assert {row[0] for row in rows} == {m["id"] for m in mine["memories"]}
        elif table == "settings":
            assert {(row[0], row[1]) for row in rows} <= {(s["scope"], s["name"]) for s in mine["settings"]}
        elif table == "audit_log":
            assert {row[0] for row in rows} <= {e["id"] for e in mine["audit"]}
        elif table in ("rate_buckets", "limit_notices", "quotas", "leases"):
            assert {(table, row[0]) for row in rows} <= {(item["table"], item["key"]) for item in mine["limits"]}
        else:
            assert table in {"users", "profiles", "conversations"}, f"{table} rows are not exported"
    # and the replies the bot gave them
    assert "Nice to hear that!" in exported_texts
    assert "I'm allergic to cats" not in exported_texts  # another user's message


async def test_forget_asks_for_confirmation_then_leaves_zero_rows_in_every_table(tmp_path):
    db = tmp_path / "bot.db"
    async with personal_app(db) as app:
        await fill(app)
        assert "Send /forget first" in (await say(app, "/forget confirm")).last
        warning = (await say(app, "/forget")).last
        assert "permanently deletes" in warning and "/forget confirm" in warning
        assert (await app.store.memories(USER)) != []  # nothing deleted before confirming
        assert (await say(app, "/forget confirm")).last == "Done. I deleted everything I kept about you."
        after = await export_user_data(app.store, USER)
    assert rows_naming(db, [USER, "Berlin", "Paris", "I love jazz"]) == {}
    assert len(table_names(db)) >= 10
    (mine,) = after["identities"]
    assert mine["user"] is None and mine["memories"] == mine["messages"] == mine["settings"] == mine["audit"] == []
    assert mine["profile"]["preferences"] == {} and mine["profile"]["interest"] is None
    # the other user's own data is untouched
    assert rows_naming(db, ["I'm allergic to cats"])["messages"]


async def test_the_confirmation_expires():
    async with personal_app(forget_confirm_ttl_s=60) as app:
        await say(app, "I live in Berlin")
        now = [1000.0]
        app.services.personalization.clock = lambda: now[0]
        await say(app, "/forget")
        now[0] += 61
        assert "Send /forget first" in (await say(app, "/forget confirm")).last
        assert await app.store.memories(USER) != []


async def test_forget_during_a_reply_in_flight_leaves_nothing_behind(tmp_path):
    db = tmp_path / "bot.db"
    generator = GatedGenerator()
    async with personal_app(db, generator=generator) as app:
        await say(app, "My name is Ann. I live in Berlin.")
        in_flight = asyncio.create_task(say(app, "I love jazz, tell me something slow"))
        await generator.started.wait()  # the reply has started streaming
        queued = asyncio.create_task(say(app, "I'm allergic to cats"))  # waits for the conversation
        await say(app, "/forget")
        assert (await say(app, "/forget confirm")).last.startswith("Done.")
        generator.gate.set()
        await asyncio.gather(in_flight, queued, return_exceptions=True)
        assert in_flight.cancelled()
    assert rows_naming(db, [USER, "Berlin", "jazz", "cats", "Partial"]) == {}


async def test_forgetting_in_a_group_keeps_the_other_members_messages(tmp_path):
    db = tmp_path / "bot.db"
    async with personal_app(db) as app:
        await say(app, "I live in Berlin", chat=GROUP, group=True)
        await say(app, "I live in Rome", user=OTHER, chat=GROUP, group=True)
        await say(app, "/forget")
        await say(app, "/forget confirm")
        group = await app.store.active_conversation(ConversationKey("telegram", GROUP))
        history = await app.store.history(group.id)
    assert [m.text for m in history] == ["I live in Rome", "Nice to hear that!"]
    assert rows_naming(db, [USER, "Berlin"]) == {}


async def test_training_export_includes_a_user_only_after_they_opt_in():
    async with personal_app() as app:
        await say(app, "I live in Berlin")
        assert await store_conversations(app.store) == []  # off by default
        assert "may be used to train" in (await say(app, "/privacy training on")).last
        (conversation,) = await store_conversations(app.store)
        assert ("user", "I live in Berlin") in conversation[2]
        await say(app, "/privacy training off")
        assert await store_conversations(app.store) == []


async def test_privacy_explains_what_is_kept_and_the_current_choices():
    async with personal_app() as app:
        await say(app, "/privacy groups on")
        text = (await say(app, "/privacy")).last
        assert "What I keep about you" in text and "/export" in text and "/forget" in text
        assert "memory: on" in text and "groups: on" in text and "training: off" in text
        assert "Usage: /privacy" in (await say(app, "/privacy training")).last
        assert "value must be one of: on, off" in (await say(app, "/privacy training maybe")).last


async def test_retention_deletes_old_messages_at_startup_and_on_demand(tmp_path):
    db = tmp_path / "bot.db"
    day = 86400.0
    async with SQLiteStore(db, clock=lambda: time.time() - 10 * day) as store:
        conversation = await store.active_conversation(ConversationKey("telegram", GROUP))
        old = await store.add_user_message(conversation.id, USER, "ancient message")
        await store.add_reply(old.id, "ancient reply")
    settings = bot_settings().model_copy(update={"storage": bot_settings().storage.model_copy(update={"retention_days": 5})})
    async with personal_app(db, settings=settings) as app:
        assert rows_naming(db, ["ancient"]) == {}  # swept before the first message
        await say(app, "fresh message")
        assert await apply_retention(app.store, 5) == 0
        assert await apply_retention(app.store, 5, now=time.time() + 6 * day) == 2
        assert rows_naming(db, ["fresh message"]) == {}


async def test_the_confirmation_survives_a_restart_and_is_used_once(tmp_path):
    db = tmp_path / "bot.db"
    async with personal_app(db) as app:
        await say(app, "I live in Berlin")
        assert "/forget confirm" in (await say(app, "/forget")).last
    async with personal_app(db) as app:  # a new process on the same database
        assert (await say(app, "/forget confirm")).last.startswith("Done.")
        assert "Send /forget first" in (await say(app, "/forget confirm")).last
        assert await app.store.get_user(USER) is None
    assert rows_naming(db, ["Berlin"]) == {}


async def test_an_expired_confirmation_from_a_past_process_is_refused(tmp_path):
    db = tmp_path / "bot.db"
    async with personal_app(db, forget_confirm_ttl_s=60) as app:
        await say(app, "I live in Berlin")
        await say(app, "/forget")
    async with personal_app(db, forget_confirm_ttl_s=60) as app:
        app.services.personalization.clock = lambda: time.time() + 61
        assert "Send /forget first" in (await say(app, "/forget confirm")).last
        assert await app.store.memories(USER) != []


def test_forget_then_confirm_across_personabot_ask_calls(tmp_path):
    from tests.bots.test_cli import personabot

    bot = tmp_path / "bot.toml"
    bot.write_text('name = "asktest"\n[model]\nbackend = "scripted"\nreplies = ["Nice to hear that!"]\n'
                   '[storage]\npath = "asktest.db"\n', encoding="utf-8")

    def ask(text: str) -> str:
        result = personabot("ask", text, "--bot", str(bot), "--user", "ana", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    ask("My name is Ann and I live in Berlin")
    assert "/forget confirm" in ask("/forget")
    assert ask("/forget confirm").strip() == "Done. I deleted everything I kept about you."
    assert "Send /forget first" in ask("/forget confirm")
    assert rows_naming(tmp_path / "asktest.db", ["Berlin", "Ann"]) == {}
