"""SQLiteStore: the Store contract on a file and in memory, plus what is SQLite's own."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import StorageError
from core.events import ConversationKey
from core.ports import Store
from core.records import Profile
from core.storage import SQLiteStore
from core.storage.sqlite.migrations import MIGRATIONS, Migration, latest_version, migrate
from core.storage.sqlite import clean_text
from tests.core.store_contract import *  # noqa: F403  (the contract suite runs on both fixtures)
from tests.core.store_shared_contract import *  # noqa: F403

ROOT = Path(__file__).resolve().parents[2]
ANN, BOB = "telegram:1001", "telegram:10012"  # Bob's id starts with Ann's: forgetting Ann must spare him
DM, GROUP = ConversationKey("telegram", "1001"), ConversationKey("telegram", "-500")


@pytest.fixture(params=["file", "memory"])
async def store(request, tmp_path):
    path = tmp_path / "bot.db" if request.param == "file" else ":memory:"
    async with SQLiteStore(path) as opened:
        yield opened


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_it_implements_the_port():
    assert isinstance(SQLiteStore(":memory:"), Store)


# -- forget leaves no trace, checked against the real schema ---------------------------


def _rows_naming(db: sqlite3.Connection, needle: str) -> dict[str, int]:
    """Rows of every table (from sqlite_master) with ``needle`` in any text column."""
    found = {}
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert "messages" in tables and "audit_log" in tables
    for table in tables:
        columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
        where = " OR ".join(f'instr(CAST("{c}" AS TEXT), ?) > 0' for c in columns)
        (count,) = db.execute(f'SELECT count(*) FROM "{table}" WHERE {where}', [needle] * len(columns)).fetchone()
        if count:
            found[table] = count
    return found


async def test_forget_leaves_zero_rows_naming_the_user(tmp_path):
    path = tmp_path / "bot.db"
    async with SQLiteStore(path) as store:
        for user, key in ((ANN, DM), (BOB, ConversationKey("telegram", "10012"))):
            await store.touch_user(user, f"name of {user}")
            await store.save_profile(Profile(user, {"name": user}, {"training": True}, (0.1, 0.2), 1))
            await store.add_memory(user, "home", f"{user} lives here", [0.3, 0.4], "private")
            await store.add_memory(user, "home", f"{user} moved", None, "group")
            for key_used in (key, GROUP):
                conversation = await store.active_conversation(key_used)
                turn = await store.add_user_message(conversation.id, user, "hello", f"telegram:update:{user}")
                await store.add_reply(turn.id, "hi")
            await store.add_user_message((await store.active_conversation(key)).id, user, "never answered")
            await store.set_setting(f"chat:{key.chat_qualified}", "persona", "tutor")
            await store.set_setting(f"user:{user}", "language", "zh")
            await store.audit(user, "export", user)
            await store.audit("telegram:9", "ban", user, detail={"users": [user], "note": f"{user} spammed"})
        await store.link_identities(ANN, "discord:1")
        await store.link_identities(BOB, "discord:2")
        await store.set_banned(ANN, True)
        await store.reset_conversation(DM)

        counts = await store.forget_user(ANN)
        assert counts["users"] == 1 and counts["audit_redacted"] == 1

    with sqlite3.connect(path) as db:
        # Only Bob's rows still contain Ann's id (his id starts with hers), and all of his remain.
        assert _rows_naming(db, ANN) == _rows_naming(db, BOB)
        assert set(_rows_naming(db, BOB)) >= {"users", "profiles", "memories", "conversations", "messages", "settings"}
        assert db.execute("SELECT target FROM audit_log WHERE actor = 'telegram:9' ORDER BY id").fetchall() == [
            ("[forgotten]",),
            (BOB,),
        ]
        assert db.execute("SELECT count(*) FROM forgotten_bans").fetchone() == (1,)
    async with SQLiteStore(path) as store:
        assert (await store.export_user(BOB))["user"]["message_count"] == 1
        assert len((await store.export_user(BOB))["messages"]) == 5


# -- durability, atomicity, concurrency -------------------------------------------------


async def test_a_killed_process_leaves_no_half_written_turn(tmp_path):
    """SIGKILL mid-stream, then every reply has its answered turn and vice versa."""
    path = tmp_path / "bot.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from core.events import ConversationKey
        from core.storage import SQLiteStore

        async def main():
            store = SQLiteStore({str(path)!r})
            await store.open()

            async def chat(i):
                conversation = await store.active_conversation(ConversationKey("t", str(i)))
                while True:
                    turn = await store.add_user_message(conversation.id, f"t:{{i}}", "question")
                    await store.add_reply(turn.id, "answer")
                    if store.write_ops >= 400:
                        os.kill(os.getpid(), signal.SIGKILL)

            await asyncio.gather(*(chat(i) for i in range(20)))

        asyncio.run(main())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr.decode()
    async with SQLiteStore(path) as store:
        assert (await store.stats())["messages"] >= 300
    with sqlite3.connect(path) as db:
        orphan_replies = db.execute(
            """SELECT count(*) FROM messages r LEFT JOIN messages u ON u.id = r.reply_to
               WHERE r.role = 'assistant' AND (u.id IS NULL OR u.answered = 0)"""
        ).fetchone()[0]
        answered_without_reply = db.execute(
            """SELECT count(*) FROM messages u WHERE u.role = 'user' AND u.answered = 1
               AND NOT EXISTS (SELECT 1 FROM messages r WHERE r.reply_to = u.id)"""
        ).fetchone()[0]
        assert (orphan_replies, answered_without_reply) == (0, 0)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_concurrent_writes_share_commits(tmp_path):
    async with SQLiteStore(tmp_path / "bot.db") as store:
        await asyncio.gather(*(store.record_event(f"e{i}") for i in range(200)))
        assert store.write_ops == 200
        assert store.write_batches < store.write_ops  # group commit: several writes per transaction
        assert (await store.stats())["processed_events"] == 200


async def test_a_failing_operation_is_rolled_back_alone(store):
    """An operation of several statements that fails midway leaves nothing behind."""

    async def half_done(db):
        await db.execute("INSERT INTO settings (scope, name, value, updated_at) VALUES ('s', 'half', 'x', 0)")
        raise RuntimeError("boom")

    results = await asyncio.gather(
        store.set_setting("s", "before", "1"),
        store._write("half_done", half_done, atomic=True),
        store.set_setting("s", "after", "2"),
        return_exceptions=True,
    )
    assert isinstance(results[1], RuntimeError)
    assert [await store.get_setting("s", n) for n in ("before", "half", "after")] == ["1", None, "2"]


async def test_an_operation_alone_in_its_batch_is_still_all_or_nothing(store):
    """Alone, an atomic operation runs in its own transaction (no savepoint) and a
    one-statement one in autocommit: a failure still leaves nothing, a success is kept."""

    async def half_done(db):
        await db.execute("INSERT INTO settings (scope, name, value, updated_at) VALUES ('s', 'half', 'x', 0)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store._write("half_done", half_done, atomic=True)
    await store.set_setting("s", "alone", "1")
    batches = store.write_batches
    assert await store.record_event("e1") is True and await store.record_event("e1") is False
    assert store.write_batches == batches + 2  # each ran alone
    assert [await store.get_setting("s", n) for n in ("half", "alone")] == [None, "1"]


async def test_reads_see_writes_at_once_across_connections(tmp_path):
    async with SQLiteStore(tmp_path / "bot.db") as store:
        conversation = await store.active_conversation(DM)
        for i in range(30):
            turn = await store.add_user_message(conversation.id, ANN, str(i))
            assert (await store.history(conversation.id, limit=1))[0].id == turn.id


async def test_wal_and_pragmas(tmp_path):
    path = tmp_path / "bot.db"
    async with SQLiteStore(path) as store:
        for db in (store._writer, store._reader, store._snapshot):
            pragmas = [
                (await (await db.execute(f"PRAGMA {name}")).fetchone())[0]
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            ]
            assert pragmas == ["wal", 1, 5000, 1]  # synchronous 1 = NORMAL
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_retention_with_a_clock(tmp_path):
    clock = Clock()
    async with SQLiteStore(tmp_path / "bot.db", clock=clock) as store:
        conversation = await store.active_conversation(DM)
        await store.record_event("old event")
        old = await store.add_user_message(conversation.id, ANN, "old")
        clock.now = 2000.0
        await store.add_reply(old.id, "reply written later")
        await store.add_user_message(conversation.id, ANN, "new")
        await store.record_event("new event")
        fresh = await store.reset_conversation(DM)
        assert await store.delete_messages_before(1500.0) == 2
        assert [m.text for m in await store.history(conversation.id)] == ["new"]
        assert await store.record_event("old event") is True  # pruned with the messages
        assert await store.record_event("new event") is False
        assert [m.text for m, _ in await store.unanswered("telegram", since=1500.0)] == ["new"]
        assert await store.delete_messages_before(3000.0) == 1
        stats = await store.stats()
        assert (stats["messages"], stats["conversations"]) == (0, 1)  # the closed, empty one is gone
        assert (await store.active_conversation(DM)).id == fresh.id


async def test_retention_in_chunks_never_splits_a_turn(tmp_path, monkeypatch):
    monkeypatch.setattr("core.storage.sqlite.store.RETENTION_CHUNK", 3)
    clock = Clock()
    async with SQLiteStore(tmp_path / "bot.db", clock=clock) as store:
        conversation = await store.active_conversation(DM)
        for i in range(10):
            clock.now = 1000.0 + i
            turn = await store.add_user_message(conversation.id, ANN, f"q{i}")
            clock.now = 1000.5 + i  # the reply of the turn at 1009 lands after the cutoff
            await store.add_reply(turn.id, f"a{i}")
        assert await store.delete_messages_before(1009.2) == 20
        assert await store.history(conversation.id) == []


# -- opening, migrations, errors ----------------------------------------------------------


async def test_fresh_database_is_at_the_latest_version_and_reopens(tmp_path):
    path = tmp_path / "nested" / "bot.db"  # missing folders are created
    async with SQLiteStore(path) as store:
        await store.touch_user(ANN, "Ann")
    async with SQLiteStore(path) as store:
        assert (await store.get_user(ANN)).display_name == "Ann"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (latest_version(),)


async def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "bot.db"
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {latest_version() + 1}")
    with pytest.raises(StorageError, match="newer"):
        async with SQLiteStore(path):
            pass


async def test_migrations_upgrade_in_order_and_roll_back_on_failure(tmp_path):
    import aiosqlite

    first = Migration(1, "one", ("CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('kept')"))
    second = Migration(2, "two", ("CREATE TABLE b (y TEXT)",))
    broken = Migration(3, "broken", ("CREATE TABLE c (z TEXT)", "INSERT INTO nowhere VALUES (1)"))
    async with aiosqlite.connect(tmp_path / "m.db", isolation_level=None) as db:
        assert await migrate(db, "m.db", (first,)) == 1
        assert await migrate(db, "m.db", (first, second)) == 2
        with pytest.raises(sqlite3.OperationalError):
            await migrate(db, "m.db", (first, second, broken))
        tables = {row[0] for row in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"a", "b"}
        assert (await db.execute_fetchall("PRAGMA user_version"))[0][0] == 2
        assert await db.execute_fetchall("SELECT x FROM a") == [("kept",)]
        with pytest.raises(StorageError, match="numbered"):
            await migrate(db, "m.db", (first, broken))
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + os.urandom(4000)],
    ids=["text", "corrupt-header"],
)
async def test_non_database_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bot.db"
    path.write_bytes(content)
    with pytest.raises(StorageError, match=str(path)):
        async with SQLiteStore(path):
            pass
    assert path.read_bytes() == content  # untouched


async def test_another_programs_database_is_not_touched(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE things (x)")
    with pytest.raises(StorageError, match="refusing"):
        async with SQLiteStore(path):
            pass
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id = 1234")
    with pytest.raises(StorageError, match="not a personabot database"):
        async with SQLiteStore(path):
            pass


async def test_unopenable_path_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = blocker / "bot.db"
    with pytest.raises(StorageError, match="cannot open database .*bot.db"):
        async with SQLiteStore(path):
            pass


async def test_closed_store_raises_storage_error(tmp_path):
    store = SQLiteStore(tmp_path / "bot.db")
    with pytest.raises(StorageError, match="not open"):
        await store.get_user(ANN)
    async with store:
        await store.touch_user(ANN)
    with pytest.raises(StorageError, match="not open"):
        await store.touch_user(ANN)


async def test_writes_queued_before_close_are_committed(tmp_path):
    path = tmp_path / "bot.db"
    store = SQLiteStore(path)
    await store.open()
    pending = [asyncio.ensure_future(store.record_event(f"e{i}")) for i in range(50)]
    await asyncio.sleep(0)  # one loop turn: each task queues its write
    await store.close()
    assert all(await asyncio.gather(*pending))
    async with SQLiteStore(path) as store:
        assert (await store.stats())["processed_events"] == 50


# -- text normalisation -------------------------------------------------------------------


def _expected(text: str) -> str:
    """Independent statement of the rule: join surrogate pairs, lone halves become U+FFFD."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if "\ud800" <= c <= "\udbff" and i + 1 < len(text) and "\udc00" <= text[i + 1] <= "\udfff":
            out.append(chr(0x10000 + ((ord(c) - 0xD800) << 10) + ord(text[i + 1]) - 0xDC00))
            i += 2
            continue
        out.append("\ufffd" if "\ud800" <= c <= "\udfff" else c)
        i += 1
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec=None, categories=None), max_size=40))
def test_clean_text_keeps_valid_text_and_replaces_lone_surrogates(text):
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # storable
    assert cleaned == _expected(text)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(codec=None, categories=None), max_size=30), min_size=1, max_size=4))
def test_any_text_round_trips_through_the_store(texts):
    async def run():
        async with SQLiteStore(":memory:") as store:
            conversation = await store.active_conversation(ConversationKey("console", "local"))
            for text in texts:
                turn = await store.add_user_message(conversation.id, "console:me", text)
                await store.add_reply(turn.id, text)
            return [m.text for m in await store.history(conversation.id, limit=100)]

    assert asyncio.run(run()) == [_expected(t) for t in texts for _ in (0, 1)]


async def test_version_4_keeps_memories_and_their_supersession_and_stops_id_reuse(tmp_path):
    import aiosqlite

    path = tmp_path / "v3.db"
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA foreign_keys = ON")
        await migrate(db, "v3.db", MIGRATIONS[:3])
        await db.execute("INSERT INTO memories VALUES (1, 'telegram:1', 'home', 'Paris', NULL, 'private', 1.0, NULL)")
        await db.execute("INSERT INTO memories VALUES (2, 'telegram:1', 'home', 'Berlin', NULL, 'private', 2.0, NULL)")
        await db.execute("INSERT INTO memories VALUES (3, 'telegram:1', 'pet', 'a cat', NULL, 'private', 3.0, NULL)")
        await db.execute("UPDATE memories SET superseded_by = 2 WHERE id = 1")
        await db.execute("DELETE FROM memories WHERE id = 3")
    async with SQLiteStore(path) as store:
        everything = await store.memories("telegram:1", include_superseded=True)
        assert [(m.id, m.text, m.superseded_by) for m in everything] == [(1, "Paris", 2), (2, "Berlin", None)]
        assert (await store.add_memory("telegram:1", "pet", "a dog", None, "private")).id == 3  # 3 was gone before v4
        assert await store.delete_memory("telegram:1", 3)
        assert (await store.add_memory("telegram:1", "pet", "a fish", None, "private")).id == 4
        assert await store.delete_memory("telegram:1", 2)  # cascades to the version it superseded
        assert [m.id for m in await store.memories("telegram:1", include_superseded=True)] == [4]
    async with aiosqlite.connect(path) as db:
        (schema,) = (await db.execute_fetchall("SELECT sql FROM sqlite_master WHERE name = 'memories'"))[0]
        assert "AUTOINCREMENT" in schema and "REFERENCES memories(id)" in schema.replace('"', "")
        assert (await db.execute_fetchall("PRAGMA foreign_key_check")) == []
