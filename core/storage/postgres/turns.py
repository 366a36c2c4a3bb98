"""The two queries a chat turn makes on PostgreSQL: store the user's turn, read its context.

Mixed into :class:`~core.storage.postgres.PostgresStore`. ``begin_turn`` is one
transaction on one pooled connection; ``turn_context`` is one statement, so one round
trip to the server, where asking for the profile, each setting and the history apart
took five.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from core.events import ConversationKey
from core.records import TurnContext, TurnStart
import core.storage.values as v

_TOUCH_USER = """INSERT INTO users AS u (id, display_name, first_seen, last_seen, message_count, banned)
    VALUES ($1, $2, $3, $3, 1, EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = $4))
    ON CONFLICT (id) DO UPDATE SET
        last_seen = excluded.last_seen,
        message_count = u.message_count + 1,
        display_name = CASE WHEN excluded.display_name <> '' THEN excluded.display_name ELSE u.display_name END"""
_FIND_CONVERSATION = f"SELECT {v.CONV_COLS} FROM conversations WHERE key = $1 AND active"
# Another process may have created it meanwhile: the no-op update returns that one.
_CREATE_CONVERSATION = f"""INSERT INTO conversations (platform, key, started_at, active) VALUES ($1, $2, $3, TRUE)
    ON CONFLICT (key) WHERE active DO UPDATE SET key = excluded.key
    RETURNING {v.CONV_COLS}"""
_ADD_USER_MESSAGE = f"""INSERT INTO messages (conversation_id, role, user_id, text, created_at, event_id)
    VALUES ($1, 'user', $2, $3, $4, $5) RETURNING {v.MSG_COLS}"""
# One statement: the profile as a row, settings and history as arrays of rows.
_TURN_CONTEXT = f"""SELECT
    (SELECT ROW({v.PROFILE_COLS}) FROM profiles WHERE user_id = $1) AS profile,
    ARRAY(SELECT ROW(scope, value) FROM settings WHERE name = $2 AND scope = ANY($3::text[])) AS settings,
    ARRAY(SELECT ROW({v.MSG_COLS}) FROM messages WHERE conversation_id = $4 ORDER BY id DESC LIMIT $5) AS history"""


class TurnsMixin:
    _run: Callable[..., Awaitable[Any]]
    _clock: Callable[[], float]

    async def begin_turn(
        self, key: ConversationKey, user_id: str, display_name: str, text: str, event_id: str | None = None
    ) -> TurnStart:
        uid, name = v.text(user_id, "user id"), v.text(display_name, "display name")
        qualified, platform = v.conversation_key(key), v.text(key.platform, "platform")
        body = v.text(text, "message text")
        event = None if event_id is None else v.text(event_id, "event id")
        now = self._clock()

        async def op(conn: asyncpg.Connection) -> TurnStart:
            await conn.execute(_TOUCH_USER, uid, name, now, v.id_hash(uid))
            row = await conn.fetchrow(_FIND_CONVERSATION, qualified)
            if row is None:
                row = await conn.fetchrow(_CREATE_CONVERSATION, platform, qualified, now)
            conversation = v.conversation(row)
            turn = await conn.fetchrow(_ADD_USER_MESSAGE, conversation.id, uid, body, now, event)
            return TurnStart(conversation, v.message(turn))

        return await self._run("begin_turn", op, tx=True)

    async def turn_context(
        self, conversation_id: int, user_id: str, setting: str, scopes: Sequence[str], history_limit: int
    ) -> TurnContext:
        uid, name = v.text(user_id, "user id"), v.text(setting, "setting name")
        wanted = [v.text(scope, "setting scope") for scope in scopes]
        row = await self._run("turn_context", lambda c: c.fetchrow(
            _TURN_CONTEXT, uid, name, wanted, int(conversation_id), max(int(history_limit), 0)))
        history = sorted((v.message(tuple(message)) for message in row["history"]), key=lambda m: m.id)
        profile = None if row["profile"] is None else tuple(row["profile"])
        return TurnContext(v.profile(uid, profile), {scope: value for scope, value in row["settings"]}, tuple(history))
