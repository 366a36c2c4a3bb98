"""What the operator console asks of the SQLite store: browse, search and page.

Mixed into :class:`~core.storage.sqlite.store.SQLiteStore`; every method here is a read
(see ``core.ports.Store`` for the contract). Listings are paged by id (keyset), so the
last page of a long conversation costs what the first one does.

Text filters use ``LIKE`` with ``%``, ``_`` and ``\\`` escaped: a search for ``50%``
finds "50%", not everything starting with "50". SQLite's LIKE ignores case for ASCII
letters only, which is what the contract promises.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from core.errors import InputRejected
from core.records import Activity, AuditEntry, ConversationSummary, StoredMessage, UserRecord
import core.storage.values as v

MAX_PAGE = 1000  # rows per call
MAX_BUCKETS = 10_000
MAX_LATENCIES = 10_000  # reply latencies returned by activity(), newest first

_SUMMARY = """SELECT c.id, c.key, c.persona, c.started_at, c.active, c.platform,
        (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id),
        (SELECT m.created_at FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1)
    FROM conversations c"""


def _limit(value: int) -> int:
    if not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InputRejected(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return value


def _contains(value: str) -> str:
    """A LIKE pattern matching ``value`` anywhere, its wildcards taken literally."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _summary(row: tuple) -> ConversationSummary:
    return ConversationSummary(v.conversation(row), row[5], row[6], row[7])


class ConsoleQueriesMixin:
    """The console's read methods of the Store."""

    _read: Callable[..., Awaitable[Any]]

    async def find_users(self, query: str = "", *, limit: int = 50, offset: int = 0) -> list[UserRecord]:
        pattern, count = _contains(v.text(query, "user search")), _limit(limit)
        if not isinstance(offset, int) or offset < 0:
            raise InputRejected("offset must be a whole number, 0 or more")

        async def op(db: aiosqlite.Connection) -> list[UserRecord]:
            rows = await db.execute_fetchall(
                rf"""SELECT {v.USER_COLS} FROM users
                    WHERE ?1 = '%%' OR id LIKE ?1 ESCAPE '\' OR display_name LIKE ?1 ESCAPE '\'
                    ORDER BY last_seen DESC, id LIMIT ?2 OFFSET ?3""",
                (pattern, count, offset),
            )
            return [v.user(row) for row in rows]

        return await self._read("find_users", op)

    async def find_conversations(
        self,
        *,
        platform: str = "",
        chat: str = "",
        user: str = "",
        text: str = "",
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[ConversationSummary]:
        where, params = ["1"], []
        if platform:
            where.append("c.platform = ?")
            params.append(v.text(platform, "platform"))
        if chat:
            where.append(r"c.key LIKE ? ESCAPE '\'")
            params.append(_contains(v.text(chat, "chat")))
        if user:
            where.append("c.id IN (SELECT conversation_id FROM messages WHERE user_id = ?)")
            params.append(v.text(user, "user id"))
        if text:
            where.append(r"c.id IN (SELECT conversation_id FROM messages WHERE text LIKE ? ESCAPE '\')")
            params.append(_contains(v.text(text, "text")))
        if before_id is not None:
            where.append("c.id < ?")
            params.append(int(before_id))
        sql = f"{_SUMMARY} WHERE {' AND '.join(where)} ORDER BY c.id DESC LIMIT ?"
        params.append(_limit(limit))

        async def op(db: aiosqlite.Connection) -> list[ConversationSummary]:
            return [_summary(row) for row in await db.execute_fetchall(sql, params)]

        return await self._read("find_conversations", op, snapshot=True)

    async def conversation_summary(self, conversation_id: int) -> ConversationSummary | None:
        params = (int(conversation_id),)

        async def op(db: aiosqlite.Connection) -> ConversationSummary | None:
            rows = list(await db.execute_fetchall(f"{_SUMMARY} WHERE c.id = ?", params))
            return _summary(rows[0]) if rows else None

        return await self._read("conversation_summary", op, snapshot=True)

    async def conversation_turns(
        self, conversation_id: int, *, after_id: int = 0, limit: int = 100
    ) -> list[StoredMessage]:
        params = (int(conversation_id), int(after_id), _limit(limit))

        async def op(db: aiosqlite.Connection) -> list[StoredMessage]:
            rows = await db.execute_fetchall(
                f"""SELECT {v.MSG_COLS} FROM messages
                   WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?""",
                params,
            )
            return [v.message(row) for row in rows]

        return await self._read("conversation_turns", op)

    async def find_audit(
        self,
        *,
        actor: str = "",
        action: str = "",
        target: str = "",
        outcome: str = "",
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        where, params = ["1"], []
        if actor:
            where.append("actor = ?")
            params.append(v.text(actor, "actor"))
        if action:
            where.append(r"action LIKE ? ESCAPE '\'")
            params.append(_contains(v.text(action, "action"))[1:])  # a prefix: no leading %
        if target:
            where.append(r"target LIKE ? ESCAPE '\'")
            params.append(_contains(v.text(target, "target")))
        if outcome:
            where.append("outcome = ?")
            params.append(v.text(outcome, "outcome"))
        if before_id is not None:
            where.append("id < ?")
            params.append(int(before_id))
        sql = (
            f"SELECT {v.AUDIT_COLS} FROM audit_log"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        )
        params.append(_limit(limit))

        async def op(db: aiosqlite.Connection) -> list[AuditEntry]:
            rows = await db.execute_fetchall(sql, params)
            return [v.audit_entry(row) for row in rows]

        return await self._read("find_audit", op)

    async def activity(self, since: float, until: float, bucket_s: float = 60.0) -> Activity:
        start, end, width = float(since), float(until), float(bucket_s)
        if not (math.isfinite(start) and math.isfinite(end) and end > start and width > 0):
            raise InputRejected("activity needs since < until and a positive bucket width")
        buckets = math.ceil((end - start) / width)
        if buckets > MAX_BUCKETS:
            raise InputRejected(f"activity: at most {MAX_BUCKETS} buckets")

        async def op(db: aiosqlite.Connection) -> Activity:
            window = (start, end)
            counts = [0] * buckets
            for index, count in await db.execute_fetchall(
                """SELECT CAST((created_at - ?1) / ?3 AS INTEGER), count(*) FROM messages
                   WHERE created_at >= ?1 AND created_at < ?2 GROUP BY 1""",
                (*window, width),
            ):
                counts[min(int(index), buckets - 1)] += count
            (users, conversations), *_ = await db.execute_fetchall(
                """SELECT count(DISTINCT user_id), count(DISTINCT conversation_id) FROM messages
                   WHERE created_at >= ? AND created_at < ?""",
                window,
            )
            latencies = await db.execute_fetchall(
                """SELECT r.created_at - u.created_at FROM messages r JOIN messages u ON u.id = r.reply_to
                   WHERE r.created_at >= ? AND r.created_at < ? AND r.reply_to IS NOT NULL
                   ORDER BY r.id DESC LIMIT ?""",
                (*window, MAX_LATENCIES),
            )
            return Activity(
                start, end, width, tuple(counts), users, conversations, tuple(max(0.0, row[0]) for row in latencies)
            )

        return await self._read("activity", op, snapshot=True)
