"""The two queries a chat turn makes on SQLite: store the user's turn, read its context.

Mixed into :class:`~core.storage.sqlite.SQLiteStore`. ``begin_turn`` is one operation
of the single writer (so it shares a group commit with other chats' writes);
``turn_context`` is one statement, so one trip to the reader's thread, where asking
for the profile, each setting and the history apart took five.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiosqlite

from core.events import ConversationKey
from core.records import TurnContext, TurnStart
import core.storage.values as v
from core.storage.sqlite.engine import fetch_all, one

_TOUCH_USER = """INSERT INTO users (id, display_name, first_seen, last_seen, message_count, banned)
    VALUES (?1, ?2, ?3, ?3, 1, EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = ?4))
    ON CONFLICT (id) DO UPDATE SET
        last_seen = excluded.last_seen,
        message_count = message_count + 1,
        display_name = iif(excluded.display_name <> '', excluded.display_name, display_name)"""
# Returns the open conversation, creating it if there is none (the no-op update returns it).
_OPEN_CONVERSATION = f"""INSERT INTO conversations (platform, key, started_at, active) VALUES (?, ?, ?, 1)
    ON CONFLICT (key) WHERE active = 1 DO UPDATE SET key = excluded.key
    RETURNING {v.CONV_COLS}"""
_ADD_USER_MESSAGE = f"""INSERT INTO messages (conversation_id, role, user_id, text, created_at, event_id)
    VALUES (?, 'user', ?, ?, ?, ?) RETURNING {v.MSG_COLS}"""
# One statement, rows tagged by kind; every branch has the 9 columns of the message rows.
_TURN_CONTEXT = f"""
    SELECT 'profile', {v.PROFILE_COLS}, NULL, NULL, NULL FROM profiles WHERE user_id = ?1
    UNION ALL
    SELECT 'setting', scope, value, NULL, NULL, NULL, NULL, NULL, NULL FROM settings
        WHERE name = ?2 AND scope IN (SELECT value FROM json_each(?3))
    UNION ALL
    SELECT * FROM (SELECT 'message', {v.MSG_COLS} FROM messages WHERE conversation_id = ?4 ORDER BY id DESC LIMIT ?5)"""


class TurnsMixin:
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]
    _clock: Callable[[], float]

    async def begin_turn(
        self, key: ConversationKey, user_id: str, display_name: str, text: str, event_id: str | None = None
    ) -> TurnStart:
        uid, name = v.text(user_id, "user id"), v.text(display_name, "display name")
        qualified, platform = v.conversation_key(key), v.text(key.platform, "platform")
        body = v.text(text, "message text")
        event = None if event_id is None else v.text(event_id, "event id")
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> TurnStart:
            await db.execute(_TOUCH_USER, (uid, name, now, v.id_hash(uid)))
            row = await one(db, _OPEN_CONVERSATION, (platform, qualified, now))
            assert row is not None
            conversation = v.conversation(row)
            turn = await one(db, _ADD_USER_MESSAGE, (conversation.id, uid, body, now, event))
            assert turn is not None
            return TurnStart(conversation, v.message(turn))

        return await self._write("begin_turn", op, atomic=True)

    async def turn_context(
        self, conversation_id: int, user_id: str, setting: str, scopes: Sequence[str], history_limit: int
    ) -> TurnContext:
        uid, name = v.text(user_id, "user id"), v.text(setting, "setting name")
        wanted = v.json_text([v.text(scope, "setting scope") for scope in scopes])
        params = (uid, name, wanted, int(conversation_id), max(int(history_limit), 0))

        async def op(db: aiosqlite.Connection) -> TurnContext:
            rows = await fetch_all(db, _TURN_CONTEXT, params)
            profile = [row[1:6] for row in rows if row[0] == "profile"]
            settings = {row[1]: row[2] for row in rows if row[0] == "setting"}
            history = sorted((v.message(row[1:]) for row in rows if row[0] == "message"), key=lambda m: m.id)
            return TurnContext(v.profile(uid, profile[0] if profile else None), settings, tuple(history))

        return await self._read("turn_context", op)

