"""The PostgreSQL Store (asyncpg): the queries; the engine is in engine.py.

The same contract as :class:`~core.storage.sqlite.SQLiteStore` (tests/core/store_contract.py
runs on both), checked and converted by the same core.storage.values code. Where SQLite
relies on its one writer, these queries rely on PostgreSQL's row locks and atomic
upserts, so any number of processes may share one database.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from core.errors import NotFound
from core.events import ConversationKey
from core.records import AuditEntry, Conversation, Memory, Profile, StoredMessage, UserRecord
import core.storage.values as v
from core.storage.postgres.console import ConsoleQueriesMixin
from core.storage.postgres.engine import PostgresEngine
from core.storage.postgres.people import PeopleMixin
from core.storage.postgres.plugin_data import PluginDataMixin
from core.storage.postgres.shared import SharedStateMixin, count
from core.storage.postgres.turns import TurnsMixin

RETENTION_CHUNK = 2000  # old messages deleted per transaction
_M_COLS = ", ".join("m." + c for c in v.MSG_COLS.split(", "))


class PostgresStore(TurnsMixin, PeopleMixin, PluginDataMixin, SharedStateMixin, ConsoleQueriesMixin, PostgresEngine):
    """``async with PostgresStore("postgresql://bot@db:5432/bot", password=...) as store: ...``"""

    # -- users -----------------------------------------------------------------------

    async def touch_user(self, user_id: str, display_name: str = "") -> UserRecord:
        uid, name = v.text(user_id, "user id"), v.text(display_name, "display name")
        params = (uid, name, self._clock(), v.id_hash(uid))
        row = await self._run("touch_user", lambda c: c.fetchrow(
            f"""INSERT INTO users AS u (id, display_name, first_seen, last_seen, message_count, banned)
                VALUES ($1, $2, $3, $3, 1, EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = $4))
                ON CONFLICT (id) DO UPDATE SET
                    last_seen = excluded.last_seen,
                    message_count = u.message_count + 1,
                    display_name = CASE WHEN excluded.display_name <> '' THEN excluded.display_name
                                        ELSE u.display_name END
                RETURNING {v.USER_COLS}""", *params))
        return v.user(row)

    async def get_user(self, user_id: str) -> UserRecord | None:
        uid = v.text(user_id, "user id")
        row = await self._run("get_user", lambda c: c.fetchrow(f"SELECT {v.USER_COLS} FROM users WHERE id = $1", uid))
        return v.user(row) if row else None

    async def set_banned(self, user_id: str, banned: bool) -> None:
        """Also works for a user never seen (an admin may ban an id in advance)."""
        uid, now, flag = v.text(user_id, "user id"), self._clock(), bool(banned)

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                """INSERT INTO users (id, first_seen, last_seen, message_count, banned) VALUES ($1, $2, $2, 0, $3)
                   ON CONFLICT (id) DO UPDATE SET banned = excluded.banned""",
                uid, now, flag,
            )
            if not flag:
                await conn.execute("DELETE FROM forgotten_bans WHERE id_hash = $1", v.id_hash(uid))

        await self._run("set_banned", op, tx=True)

    async def is_banned(self, user_id: str) -> bool:
        uid = v.text(user_id, "user id")
        return bool(await self._run("is_banned", lambda c: c.fetchval(
            """SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND banned)
                   OR EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = $2)""", uid, v.id_hash(uid))))

    # -- profiles --------------------------------------------------------------------

    async def get_profile(self, user_id: str) -> Profile:
        """The stored profile, or an empty one (nothing is created)."""
        uid = v.text(user_id, "user id")
        row = await self._run("get_profile", lambda c: c.fetchrow(
            f"SELECT {v.PROFILE_COLS} FROM profiles WHERE user_id = $1", uid))
        return v.profile(uid, row)

    async def save_profile(self, profile: Profile) -> None:
        """Replace the user's profile; ``updated_at`` becomes the time of saving."""
        params = (*v.profile_values(profile), self._clock())
        await self._run("save_profile", lambda c: c.execute(
            """INSERT INTO profiles (user_id, preferences, consent, interest, interest_count, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (user_id) DO UPDATE SET preferences = excluded.preferences, consent = excluded.consent,
                   interest = excluded.interest, interest_count = excluded.interest_count,
                   updated_at = excluded.updated_at""", *params))

    # -- settings --------------------------------------------------------------------

    async def get_setting(self, scope: str, name: str) -> str | None:
        params = (v.text(scope, "setting scope"), v.text(name, "setting name"))
        return await self._run("get_setting", lambda c: c.fetchval(
            "SELECT value FROM settings WHERE scope = $1 AND name = $2", *params))

    async def set_setting(self, scope: str, name: str, value: str | None) -> None:
        key = (v.text(scope, "setting scope"), v.text(name, "setting name"))
        if value is None:
            await self._run("set_setting", lambda c: c.execute(
                "DELETE FROM settings WHERE scope = $1 AND name = $2", *key))
            return
        stored, now = v.text(value, "setting value"), self._clock()
        await self._run("set_setting", lambda c: c.execute(
            """INSERT INTO settings (scope, name, value, updated_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (scope, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
            *key, stored, now))

    # -- personas --------------------------------------------------------------------

    async def upsert_persona(self, name: str, definition: dict[str, Any]) -> None:
        persona = v.text(name, "persona name")
        body, now = v.persona_json(persona, definition), self._clock()
        await self._run("upsert_persona", lambda c: c.execute(
            """INSERT INTO personas (name, definition, updated_at) VALUES ($1, $2, $3)
               ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at""",
            persona, body, now))

    async def get_persona(self, name: str) -> dict[str, Any] | None:
        persona = v.text(name, "persona name")
        body = await self._run("get_persona", lambda c: c.fetchval(
            "SELECT definition FROM personas WHERE name = $1", persona))
        return None if body is None else json.loads(body)

    async def list_personas(self) -> list[str]:
        rows = await self._run("list_personas", lambda c: c.fetch('SELECT name FROM personas ORDER BY name COLLATE "C"'))
        return [row[0] for row in rows]

    # -- conversations and messages --------------------------------------------------

    async def active_conversation(self, key: ConversationKey) -> Conversation:
        qualified = v.conversation_key(key)
        found = await self._run("active_conversation", lambda c: c.fetchrow(
            f"SELECT {v.CONV_COLS} FROM conversations WHERE key = $1 AND active", qualified))
        if found is not None:
            return v.conversation(found)
        platform, now = v.text(key.platform, "platform"), self._clock()
        # Another caller (or process) may have created it meanwhile: the no-op update returns that one.
        row = await self._run("active_conversation", lambda c: c.fetchrow(
            f"""INSERT INTO conversations (platform, key, started_at, active) VALUES ($1, $2, $3, TRUE)
                ON CONFLICT (key) WHERE active DO UPDATE SET key = excluded.key
                RETURNING {v.CONV_COLS}""", platform, qualified, now))
        return v.conversation(row)

    async def reset_conversation(self, key: ConversationKey) -> Conversation:
        """Close the open conversation and start an empty one with the same persona."""
        qualified, now = v.conversation_key(key), self._clock()
        platform = v.text(key.platform, "platform")

        async def op(conn: asyncpg.Connection) -> Conversation:
            persona = await conn.fetchval(
                """UPDATE conversations SET active = FALSE, closed_at = $1 WHERE key = $2 AND active
                   RETURNING persona""", now, qualified)
            row = await conn.fetchrow(
                f"""INSERT INTO conversations (platform, key, persona, started_at, active) VALUES ($1, $2, $3, $4, TRUE)
                    ON CONFLICT (key) WHERE active DO UPDATE SET key = excluded.key
                    RETURNING {v.CONV_COLS}""", platform, qualified, persona, now)
            return v.conversation(row)

        return await self._run("reset_conversation", op, tx=True)

    async def set_conversation_persona(self, conversation_id: int, persona: str | None) -> None:
        name = None if persona is None else v.text(persona, "persona name")
        status = await self._run("set_conversation_persona", lambda c: c.execute(
            "UPDATE conversations SET persona = $1 WHERE id = $2", name, int(conversation_id)))
        if not count(status):
            raise NotFound(f"conversation {conversation_id} does not exist")

    async def record_event(self, event_id: str) -> bool:
        params = (v.text(event_id, "event id"), self._clock())
        status = await self._run("record_event", lambda c: c.execute(
            "INSERT INTO processed_events (event_id, seen_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", *params))
        return bool(count(status))

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

        async def op(conn: asyncpg.Connection) -> StoredMessage:
            try:
                row = await conn.fetchrow(
                    f"""INSERT INTO messages (conversation_id, role, user_id, text, created_at, event_id)
                        VALUES ($1, 'user', $2, $3, $4, $5) RETURNING {v.MSG_COLS}""", *params)
            except asyncpg.ForeignKeyViolationError:
                raise NotFound(f"conversation {conversation_id} does not exist") from None
            return v.message(row)

        return await self._run("add_user_message", op)

    async def add_reply(self, user_message_id: int, text: str) -> StoredMessage:
        """One statement: marking the user turn answered and storing the reply commit together."""
        params = (v.text(text, "reply text"), self._clock(), int(user_message_id))
        row = await self._run("add_reply", lambda c: c.fetchrow(
            f"""WITH turn AS (
                    UPDATE messages SET answered = TRUE WHERE id = $3 AND role = 'user'
                    RETURNING conversation_id, id)
                INSERT INTO messages (conversation_id, role, user_id, text, created_at, reply_to)
                SELECT conversation_id, 'assistant', NULL, $1, $2, id FROM turn
                RETURNING {v.MSG_COLS}""", *params))
        if row is None:
            raise NotFound(f"user message {user_message_id} does not exist")
        return v.message(row)

    async def history(self, conversation_id: int, limit: int = 50) -> list[StoredMessage]:
        if limit <= 0:
            return []
        rows = await self._run("history", lambda c: c.fetch(
            f"SELECT {v.MSG_COLS} FROM messages WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2",
            int(conversation_id), int(limit)))
        return [v.message(row) for row in reversed(rows)]

    async def unanswered(self, platform: str, since: float = 0.0) -> list[tuple[StoredMessage, str]]:
        """Oldest first, from open and closed conversations alike."""
        params = (float(since), v.text(platform, "platform"))
        rows = await self._run("unanswered", lambda c: c.fetch(
            f"""SELECT {_M_COLS}, c.key FROM messages m JOIN conversations c ON c.id = m.conversation_id
                WHERE m.role = 'user' AND NOT m.answered AND m.created_at >= $1 AND c.platform = $2
                ORDER BY m.created_at, m.id""", *params))
        return [(v.message(row), row[-1]) for row in rows]

    async def turn_by_event(self, event_id: str) -> tuple[StoredMessage, StoredMessage | None] | None:
        """The user turn stored for a platform event and the bot's reply to it (None: never stored)."""
        eid = v.text(event_id, "event id")

        async def op(conn: asyncpg.Connection) -> tuple[StoredMessage, StoredMessage | None] | None:
            turn = await conn.fetchrow(
                f"SELECT {v.MSG_COLS} FROM messages WHERE event_id = $1 AND role = 'user' ORDER BY id LIMIT 1", eid)
            if turn is None:
                return None
            reply = await conn.fetchrow(
                f"SELECT {v.MSG_COLS} FROM messages WHERE reply_to = $1 ORDER BY id LIMIT 1", turn[0])
            return v.message(turn), None if reply is None else v.message(reply)

        return await self._run("turn_by_event", op, snapshot=True)

    async def consented_conversations(self, flag: str = "training") -> list[list[StoredMessage]]:
        """Conversations with at least one user turn, ordered by id; a missing flag means no consent."""
        word = v.consent_word(flag)
        rows = await self._run("consented_conversations", lambda c: c.fetch(
            f"""WITH authors AS (
                    SELECT DISTINCT conversation_id, user_id FROM messages WHERE role = 'user'),
                ok AS (
                    SELECT a.conversation_id FROM authors a LEFT JOIN profiles p ON p.user_id = a.user_id
                    GROUP BY a.conversation_id
                    HAVING bool_and(coalesce((p.consent::jsonb -> $1) = 'true'::jsonb, FALSE)))
                SELECT {_M_COLS} FROM messages m JOIN ok ON ok.conversation_id = m.conversation_id
                ORDER BY m.conversation_id, m.id""", word))
        return [[v.message(row) for row in group] for _, group in itertools.groupby(rows, key=lambda row: row[1])]

    async def delete_messages_before(self, timestamp: float) -> int:
        """Retention, as SQLite's: chunks of at most RETENTION_CHUNK old messages, each
        one transaction (a reply goes with its user turn), then empty closed
        conversations, old de-duplication ids and limit state last touched before the cutoff."""
        cutoff = float(timestamp)

        async def chunk(conn: asyncpg.Connection) -> int:
            return count(await conn.execute(
                """WITH old AS (SELECT id FROM messages WHERE created_at < $1 ORDER BY created_at, id LIMIT $2)
                   DELETE FROM messages WHERE id IN (SELECT id FROM old) OR reply_to IN (SELECT id FROM old)""",
                cutoff, RETENTION_CHUNK))

        async def tidy(conn: asyncpg.Connection) -> None:
            await conn.execute(
                """DELETE FROM conversations WHERE NOT active
                   AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = conversations.id)""")
            await conn.execute("DELETE FROM processed_events WHERE seen_at < $1", cutoff)
            for table, column in (("rate_buckets", "updated"), ("limit_notices", "until"), ("leases", "until")):
                await conn.execute(f"DELETE FROM {table} WHERE {column} < $1", cutoff)

        total = 0
        while deleted := await self._run("delete_messages_before", chunk, tx=True):
            total += deleted
        await self._run("delete_messages_before", tidy, tx=True)
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

        async def op(conn: asyncpg.Connection) -> Memory:
            row = await conn.fetchrow(
                f"""INSERT INTO memories (user_id, subject, text, embedding, scope, created_at, source_message_id)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {v.MEM_COLS}""", *params)
            if topic:
                await conn.execute(
                    """UPDATE memories SET superseded_by = $1
                       WHERE user_id = $2 AND subject = $3 AND superseded_by IS NULL AND id <> $1""",
                    row[0], uid, topic)
            return v.memory(row)

        return await self._run("add_memory", op, tx=True)

    async def memories(self, user_id: str, include_superseded: bool = False) -> list[Memory]:
        """Oldest first."""
        uid = v.text(user_id, "user id")
        live = "" if include_superseded else "AND superseded_by IS NULL"
        rows = await self._run("memories", lambda c: c.fetch(
            f"SELECT {v.MEM_COLS} FROM memories WHERE user_id = $1 {live} ORDER BY id", uid))
        return [v.memory(row) for row in rows]

    async def delete_memory(self, user_id: str, memory_id: int) -> bool:
        """Only the owner's memory; the older versions it superseded go with it (cascade)."""
        params = (int(memory_id), v.text(user_id, "user id"))
        return bool(count(await self._run("delete_memory", lambda c: c.execute(
            "DELETE FROM memories WHERE id = $1 AND user_id = $2", *params))))

    # -- audit -----------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", detail: dict[str, Any] | None = None
    ) -> None:
        """``detail`` values that are not JSON data are stored as their ``str()``."""
        params = (
            self._clock(),
            v.text(actor, "audit actor"),
            v.text(action, "audit action"),
            v.text(target, "audit target"),
            v.audit_outcome(outcome),
            v.json_text(detail or {}),
        )
        await self._run("audit", lambda c: c.execute(
            "INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            *params))

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """Newest first."""
        if limit <= 0:
            return []
        rows = await self._run("recent_audit", lambda c: c.fetch(
            f"SELECT {v.AUDIT_COLS} FROM audit_log ORDER BY id DESC LIMIT $1", int(limit)))
        return [v.audit_entry(row) for row in rows]
