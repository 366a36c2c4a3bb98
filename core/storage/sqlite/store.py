"""The default Store: SQLite through aiosqlite (the queries; the engine is in engine.py).

Every write is an operation queued for the engine's one writer (group commit); reads
run on the reader connections. Values are checked and rows converted by
core.storage.values, the same code the PostgreSQL store uses.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from core.errors import NotFound
from core.events import ConversationKey
from core.records import AuditEntry, Conversation, Memory, Profile, StoredMessage, UserRecord
import core.storage.values as v
from core.storage.sqlite.console_queries import ConsoleQueriesMixin
from core.storage.sqlite.engine import SQLiteEngine, changes, fetch_all, one
from core.storage.sqlite.people import PeopleMixin
from core.storage.sqlite.plugin_data import PluginDataMixin
from core.storage.sqlite.shared import SharedStateMixin
from core.storage.sqlite.turns import TurnsMixin

RETENTION_CHUNK = 2000  # old messages deleted per transaction


class SQLiteStore(TurnsMixin, PeopleMixin, PluginDataMixin, SharedStateMixin, ConsoleQueriesMixin, SQLiteEngine):
    """``async with SQLiteStore("bot.db") as store: ...`` — see engine.py for the concurrency."""

    # -- users -----------------------------------------------------------------------

    async def touch_user(self, user_id: str, display_name: str = "") -> UserRecord:
        uid, name = v.text(user_id, "user id"), v.text(display_name, "display name")
        params = (uid, name, self._clock(), v.id_hash(uid))

        async def op(db: aiosqlite.Connection) -> UserRecord:
            row = await one(
                db,
                f"""INSERT INTO users (id, display_name, first_seen, last_seen, message_count, banned)
                    VALUES (?1, ?2, ?3, ?3, 1, EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = ?4))
                    ON CONFLICT (id) DO UPDATE SET
                        last_seen = excluded.last_seen,
                        message_count = message_count + 1,
                        display_name = iif(excluded.display_name <> '', excluded.display_name, display_name)
                    RETURNING {v.USER_COLS}""",
                params,
            )
            assert row is not None
            return v.user(row)

        return await self._write("touch_user", op)

    async def get_user(self, user_id: str) -> UserRecord | None:
        uid = v.text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> UserRecord | None:
            row = await one(db, f"SELECT {v.USER_COLS} FROM users WHERE id = ?", (uid,))
            return v.user(row) if row else None

        return await self._read("get_user", op)

    async def set_banned(self, user_id: str, banned: bool) -> None:
        """Also works for a user never seen (an admin may ban an id in advance)."""
        uid, now = v.text(user_id, "user id"), self._clock()

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                """INSERT INTO users (id, first_seen, last_seen, message_count, banned) VALUES (?, ?, ?, 0, ?)
                   ON CONFLICT (id) DO UPDATE SET banned = excluded.banned""",
                (uid, now, now, int(bool(banned))),
            )
            if not banned:
                await db.execute("DELETE FROM forgotten_bans WHERE id_hash = ?", (v.id_hash(uid),))

        await self._write("set_banned", op, atomic=True)

    async def is_banned(self, user_id: str) -> bool:
        uid = v.text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> bool:
            row = await one(
                db,
                """SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND banned)
                       OR EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = ?)""",
                (uid, v.id_hash(uid)),
            )
            return bool(row and row[0])

        return await self._read("is_banned", op)

    # -- profiles --------------------------------------------------------------------

    async def get_profile(self, user_id: str) -> Profile:
        """The stored profile, or an empty one (nothing is created)."""
        uid = v.text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> Profile:
            row = await one(
                db,
                f"SELECT {v.PROFILE_COLS} FROM profiles WHERE user_id = ?",
                (uid,),
            )
            return v.profile(uid, row)

        return await self._read("get_profile", op)

    async def save_profile(self, profile: Profile) -> None:
        """Replace the user's profile; ``updated_at`` becomes the time of saving."""
        params = (*v.profile_values(profile), self._clock())

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                """INSERT OR REPLACE INTO profiles (user_id, preferences, consent, interest, interest_count, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                params,
            )

        await self._write("save_profile", op)

    # -- settings --------------------------------------------------------------------

    async def get_setting(self, scope: str, name: str) -> str | None:
        params = (v.text(scope, "setting scope"), v.text(name, "setting name"))

        async def op(db: aiosqlite.Connection) -> str | None:
            row = await one(db, "SELECT value FROM settings WHERE scope = ? AND name = ?", params)
            return row[0] if row else None

        return await self._read("get_setting", op)

    async def set_setting(self, scope: str, name: str, value: str | None) -> None:
        key = (v.text(scope, "setting scope"), v.text(name, "setting name"))
        stored = None if value is None else v.text(value, "setting value")
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> None:
            if stored is None:
                await db.execute("DELETE FROM settings WHERE scope = ? AND name = ?", key)
            else:
                await db.execute(
                    "INSERT OR REPLACE INTO settings (scope, name, value, updated_at) VALUES (?, ?, ?, ?)",
                    (*key, stored, now),
                )

        await self._write("set_setting", op)

    # -- personas --------------------------------------------------------------------

    async def upsert_persona(self, name: str, definition: dict[str, Any]) -> None:
        persona = v.text(name, "persona name")
        body = v.persona_json(persona, definition)
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT OR REPLACE INTO personas (name, definition, updated_at) VALUES (?, ?, ?)", (persona, body, now)
            )

        await self._write("upsert_persona", op)

    async def get_persona(self, name: str) -> dict[str, Any] | None:
        persona = v.text(name, "persona name")

        async def op(db: aiosqlite.Connection) -> dict[str, Any] | None:
            row = await one(db, "SELECT definition FROM personas WHERE name = ?", (persona,))
            return json.loads(row[0]) if row else None

        return await self._read("get_persona", op)

    async def list_personas(self) -> list[str]:
        async def op(db: aiosqlite.Connection) -> list[str]:
            return [row[0] for row in await fetch_all(db, "SELECT name FROM personas ORDER BY name")]

        return await self._read("list_personas", op)

    # -- conversations and messages --------------------------------------------------

    async def active_conversation(self, key: ConversationKey) -> Conversation:
        qualified = v.conversation_key(key)

        async def find(db: aiosqlite.Connection) -> Conversation | None:
            row = await one(db, f"SELECT {v.CONV_COLS} FROM conversations WHERE key = ? AND active = 1", (qualified,))
            return v.conversation(row) if row else None

        found = await self._read("active_conversation", find)
        if found is not None:
            return found
        now = self._clock()

        async def create(db: aiosqlite.Connection) -> Conversation:
            # Another caller may have created it meanwhile: the no-op update returns that one.
            row = await one(
                db,
                f"""INSERT INTO conversations (platform, key, started_at, active) VALUES (?, ?, ?, 1)
                    ON CONFLICT (key) WHERE active = 1 DO UPDATE SET key = excluded.key
                    RETURNING {v.CONV_COLS}""",
                (v.text(key.platform, "platform"), qualified, now),
            )
            assert row is not None
            return v.conversation(row)

        return await self._write("active_conversation", create)

    async def reset_conversation(self, key: ConversationKey) -> Conversation:
        """Close the open conversation and start an empty one with the same persona."""
        qualified, now = v.conversation_key(key), self._clock()

        async def op(db: aiosqlite.Connection) -> Conversation:
            old = await one(
                db, "UPDATE conversations SET active = 0, closed_at = ? WHERE key = ? AND active = 1 RETURNING persona",
                (now, qualified),
            )
            row = await one(
                db,
                f"""INSERT INTO conversations (platform, key, persona, started_at, active) VALUES (?, ?, ?, ?, 1)
                    RETURNING {v.CONV_COLS}""",
                (v.text(key.platform, "platform"), qualified, old[0] if old else None, now),
            )
            assert row is not None
            return v.conversation(row)

        return await self._write("reset_conversation", op, atomic=True)

    async def set_conversation_persona(self, conversation_id: int, persona: str | None) -> None:
        name = None if persona is None else v.text(persona, "persona name")

        async def op(db: aiosqlite.Connection) -> None:
            if not await changes(db, "UPDATE conversations SET persona = ? WHERE id = ?", (name, int(conversation_id))):
                raise NotFound(f"conversation {conversation_id} does not exist")

        await self._write("set_conversation_persona", op)

    async def record_event(self, event_id: str) -> bool:
        params = (v.text(event_id, "event id"), self._clock())

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(
                await changes(db, "INSERT INTO processed_events (event_id, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING", params)
            )

        return await self._write("record_event", op)

    async def add_user_message(
        self, conversation_id: int, user_id: str, text: str, event_id: str | None = None
    ) -> StoredMessage:
        params = (
            int(conversation_id),
            v.text(user_id, "user id"),
            v.text(text, "message text"),
            self._clock(),
            None if event_id is None else v.text(event_id, "event id"),
        )

        async def op(db: aiosqlite.Connection) -> StoredMessage:
            try:
                row = await one(
                    db,
                    f"""INSERT INTO messages (conversation_id, role, user_id, text, created_at, event_id)
                        VALUES (?, 'user', ?, ?, ?, ?) RETURNING {v.MSG_COLS}""",
                    params,
                )
            except sqlite3.IntegrityError:
                raise NotFound(f"conversation {conversation_id} does not exist") from None
            assert row is not None
            return v.message(row)

        return await self._write("add_user_message", op)

    async def add_reply(self, user_message_id: int, text: str) -> StoredMessage:
        """One INSERT; the ``messages_mark_answered`` trigger marks the user turn in it."""
        params = (v.text(text, "reply text"), self._clock(), int(user_message_id))

        async def op(db: aiosqlite.Connection) -> StoredMessage:
            row = await one(
                db,
                f"""INSERT INTO messages (conversation_id, role, user_id, text, created_at, reply_to)
                    SELECT conversation_id, 'assistant', NULL, ?, ?, id FROM messages WHERE id = ? AND role = 'user'
                    RETURNING {v.MSG_COLS}""",
                params,
            )
            if row is None:
                raise NotFound(f"user message {user_message_id} does not exist")
            return v.message(row)

        return await self._write("add_reply", op)

    async def history(self, conversation_id: int, limit: int = 50) -> list[StoredMessage]:
        if limit <= 0:
            return []
        params = (int(conversation_id), int(limit))

        async def op(db: aiosqlite.Connection) -> list[StoredMessage]:
            rows = await fetch_all(
                db, f"SELECT {v.MSG_COLS} FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?", params
            )
            return [v.message(row) for row in reversed(rows)]

        return await self._read("history", op)

    async def unanswered(self, platform: str, since: float = 0.0) -> list[tuple[StoredMessage, str]]:
        """Oldest first, from open and closed conversations alike."""
        params = (float(since), v.text(platform, "platform"))

        async def op(db: aiosqlite.Connection) -> list[tuple[StoredMessage, str]]:
            rows = await fetch_all(
                db,
                f"""SELECT {", ".join("m." + c for c in v.MSG_COLS.split(", "))}, c.key
                    FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE m.role = 'user' AND m.answered = 0 AND m.created_at >= ? AND c.platform = ?
                    ORDER BY m.created_at, m.id""",  # the order of the partial index: no table scan
                params,
            )
            return [(v.message(row), row[-1]) for row in rows]

        return await self._read("unanswered", op)

    async def turn_by_event(self, event_id: str) -> tuple[StoredMessage, StoredMessage | None] | None:
        """The user turn stored for a platform event and the bot's reply to it (None: never stored).

        Only asked when an event is delivered again (core.recovery), so no index is kept for it.
        """
        eid = v.text(event_id, "event id")

        async def op(db: aiosqlite.Connection) -> tuple[StoredMessage, StoredMessage | None] | None:
            turn = await one(
                db, f"SELECT {v.MSG_COLS} FROM messages WHERE event_id = ? AND role = 'user' ORDER BY id LIMIT 1", (eid,)
            )
            if turn is None:
                return None
            reply = await one(db, f"SELECT {v.MSG_COLS} FROM messages WHERE reply_to = ? ORDER BY id LIMIT 1", (turn[0],))
            return v.message(turn), None if reply is None else v.message(reply)

        return await self._read("turn_by_event", op, snapshot=True)

    async def consented_conversations(self, flag: str = "training") -> list[list[StoredMessage]]:
        """Conversations with at least one user turn, ordered by id; a missing flag means no consent."""
        path = f'$."{v.consent_word(flag)}"'

        async def op(db: aiosqlite.Connection) -> list[list[StoredMessage]]:
            rows = await fetch_all(
                db,
                f"""WITH authors AS (
                        SELECT DISTINCT conversation_id, user_id FROM messages WHERE role = 'user'),
                    ok AS (
                        SELECT a.conversation_id FROM authors a LEFT JOIN profiles p ON p.user_id = a.user_id
                        GROUP BY a.conversation_id
                        HAVING min(coalesce(json_extract(p.consent, ?) IS 1, 0)) = 1)
                    SELECT {", ".join("m." + c for c in v.MSG_COLS.split(", "))}
                    FROM messages m JOIN ok ON ok.conversation_id = m.conversation_id
                    ORDER BY m.conversation_id, m.id""",
                (path,),
            )
            return [
                [v.message(row) for row in group] for _, group in itertools.groupby(rows, key=lambda row: row[1])
            ]

        return await self._read("consented_conversations", op)

    async def delete_messages_before(self, timestamp: float) -> int:
        """Retention: delete older messages (a reply goes with its user turn), closed
        conversations left empty, de-duplication ids seen before ``timestamp``, and limit
        state (token buckets, notices, leases) last touched before it.
        Returns the number of messages deleted.

        Runs as a series of transactions of at most RETENTION_CHUNK old messages, so a
        first run over a large history does not hold up the chats; each one is atomic
        (a crash midway leaves fewer old messages, never half a turn)."""
        cutoff = float(timestamp)

        async def chunk(db: aiosqlite.Connection) -> int:
            return await changes(
                db,
                """DELETE FROM messages
                   WHERE id IN (SELECT id FROM messages WHERE created_at < ?1 ORDER BY created_at, id LIMIT ?2)
                   OR reply_to IN (SELECT id FROM messages WHERE created_at < ?1 ORDER BY created_at, id LIMIT ?2)""",
                (cutoff, RETENTION_CHUNK),
            )

        async def tidy(db: aiosqlite.Connection) -> None:
            await db.execute(
                """DELETE FROM conversations WHERE active = 0
                   AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = conversations.id)"""
            )
            await db.execute("DELETE FROM processed_events WHERE seen_at < ?", (cutoff,))
            # Limit state last touched before the cutoff: refilled buckets, ended notices and leases.
            await db.execute("DELETE FROM rate_buckets WHERE updated < ?", (cutoff,))
            await db.execute("DELETE FROM limit_notices WHERE until < ?", (cutoff,))
            await db.execute("DELETE FROM leases WHERE until < ?", (cutoff,))

        total = 0
        while deleted := await self._write("delete_messages_before", chunk):
            total += deleted
        await self._write("delete_messages_before", tidy, atomic=True)
        return total

    # -- memories --------------------------------------------------------------------

    async def add_memory(
        self, user_id: str, subject: str, text: str, embedding: Sequence[float] | None, scope: str,
        source_message_id: int | None = None,
    ) -> Memory:
        """``subject`` is stored case-folded with spaces collapsed; an empty subject
        never supersedes anything."""
        scope = v.memory_scope(scope)
        uid, topic = v.text(user_id, "user id"), v.memory_subject(subject)
        params = (uid, topic, v.text(text, "memory text"), v.vector(embedding, "memory embedding"), scope, self._clock(),
                  None if source_message_id is None else int(source_message_id))

        async def op(db: aiosqlite.Connection) -> Memory:
            row = await one(
                db,
                f"""INSERT INTO memories (user_id, subject, text, embedding, scope, created_at, source_message_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {v.MEM_COLS}""",
                params,
            )
            assert row is not None
            if topic:
                await db.execute(
                    """UPDATE memories SET superseded_by = ?1
                       WHERE user_id = ?2 AND subject = ?3 AND superseded_by IS NULL AND id <> ?1""",
                    (row[0], uid, topic),
                )
            return v.memory(row)

        return await self._write("add_memory", op, atomic=True)

    async def memories(self, user_id: str, include_superseded: bool = False) -> list[Memory]:
        """Oldest first."""
        uid = v.text(user_id, "user id")
        live = "" if include_superseded else "AND superseded_by IS NULL"

        async def op(db: aiosqlite.Connection) -> list[Memory]:
            rows = await fetch_all(db, f"SELECT {v.MEM_COLS} FROM memories WHERE user_id = ? {live} ORDER BY id", (uid,))
            return [v.memory(row) for row in rows]

        return await self._read("memories", op)

    async def delete_memory(self, user_id: str, memory_id: int) -> bool:
        """Only the owner's memory; the older versions it superseded go with it, so a
        deleted fact never resurfaces."""
        params = (int(memory_id), v.text(user_id, "user id"))

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(await changes(db, "DELETE FROM memories WHERE id = ? AND user_id = ?", params))

        return await self._write("delete_memory", op)

    # -- audit -----------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", detail: dict[str, Any] | None = None
    ) -> None:
        """``detail`` values that are not JSON data are stored as their ``str()``."""
        outcome = v.audit_outcome(outcome)
        params = (
            self._clock(),
            v.text(actor, "audit actor"),
            v.text(action, "audit action"),
            v.text(target, "audit target"),
            outcome,
            v.json_text(detail or {}),
        )

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)", params
            )

        await self._write("audit", op)

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """Newest first."""
        if limit <= 0:
            return []

        async def op(db: aiosqlite.Connection) -> list[AuditEntry]:
            rows = await fetch_all(db, f"SELECT {v.AUDIT_COLS} FROM audit_log ORDER BY id DESC LIMIT ?", (int(limit),))
            return [v.audit_entry(row) for row in rows]

        return await self._read("recent_audit", op)
