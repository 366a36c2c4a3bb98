"""What the operator console asks of the PostgreSQL store: browse, search and page.

The same reads as core/storage/sqlite/console_queries.py (its checks and LIKE escaping
are reused, so both backends refuse and match the same things). PostgreSQL's LIKE is
case-sensitive, so the text filters use ILIKE to ignore case as SQLite's LIKE does.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from core.errors import InputRejected
from core.records import Activity, AuditEntry, ConversationSummary, StoredMessage, UserRecord
import core.storage.values as v
from core.storage.sqlite.console_queries import MAX_BUCKETS, MAX_LATENCIES, _contains, _limit

_SUMMARY = """SELECT c.id, c.key, c.persona, c.started_at, c.active, c.platform,
        (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id),
        (SELECT m.created_at FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1)
    FROM conversations c"""


def _summary(row: Any) -> ConversationSummary:
    return ConversationSummary(v.conversation(row), row[5], row[6], row[7])


class _Where:
    """AND-ed conditions with numbered parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = ["TRUE"]
        self.params: list[Any] = []

    def add(self, sql: str, value: Any) -> None:
        self.params.append(value)
        self.parts.append(sql.replace("?", f"${len(self.params)}"))

    def sql(self) -> str:
        return " AND ".join(self.parts)

    def next(self) -> str:
        return f"${len(self.params) + 1}"


class ConsoleQueriesMixin:
    _run: Callable[..., Awaitable[Any]]

    async def find_users(self, query: str = "", *, limit: int = 50, offset: int = 0) -> list[UserRecord]:
        pattern, count = _contains(v.text(query, "user search")), _limit(limit)
        if not isinstance(offset, int) or offset < 0:
            raise InputRejected("offset must be a whole number, 0 or more")
        rows = await self._run("find_users", lambda c: c.fetch(
            rf"""SELECT {v.USER_COLS} FROM users
                WHERE $1 = '%%' OR id ILIKE $1 ESCAPE '\' OR display_name ILIKE $1 ESCAPE '\'
                ORDER BY last_seen DESC, id LIMIT $2 OFFSET $3""", pattern, count, offset))
        return [v.user(row) for row in rows]

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
        where = _Where()
        if platform:
            where.add("c.platform = ?", v.text(platform, "platform"))
        if chat:
            where.add(r"c.key ILIKE ? ESCAPE '\'", _contains(v.text(chat, "chat")))
        if user:
            where.add("c.id IN (SELECT conversation_id FROM messages WHERE user_id = ?)", v.text(user, "user id"))
        if text:
            where.add(r"c.id IN (SELECT conversation_id FROM messages WHERE text ILIKE ? ESCAPE '\')",
                      _contains(v.text(text, "text")))
        if before_id is not None:
            where.add("c.id < ?", int(before_id))
        sql = f"{_SUMMARY} WHERE {where.sql()} ORDER BY c.id DESC LIMIT {where.next()}"
        rows = await self._run("find_conversations", lambda c: c.fetch(sql, *where.params, _limit(limit)),
                               snapshot=True)
        return [_summary(row) for row in rows]

    async def conversation_summary(self, conversation_id: int) -> ConversationSummary | None:
        row = await self._run("conversation_summary", lambda c: c.fetchrow(
            f"{_SUMMARY} WHERE c.id = $1", int(conversation_id)), snapshot=True)
        return _summary(row) if row else None

    async def conversation_turns(
        self, conversation_id: int, *, after_id: int = 0, limit: int = 100
    ) -> list[StoredMessage]:
        rows = await self._run("conversation_turns", lambda c: c.fetch(
            f"SELECT {v.MSG_COLS} FROM messages WHERE conversation_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            int(conversation_id), int(after_id), _limit(limit)))
        return [v.message(row) for row in rows]

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
        where = _Where()
        if actor:
            where.add("actor = ?", v.text(actor, "actor"))
        if action:
            where.add(r"action ILIKE ? ESCAPE '\'", _contains(v.text(action, "action"))[1:])  # a prefix
        if target:
            where.add(r"target ILIKE ? ESCAPE '\'", _contains(v.text(target, "target")))
        if outcome:
            where.add("outcome = ?", v.text(outcome, "outcome"))
        if before_id is not None:
            where.add("id < ?", int(before_id))
        sql = f"SELECT {v.AUDIT_COLS} FROM audit_log WHERE {where.sql()} ORDER BY id DESC LIMIT {where.next()}"
        rows = await self._run("find_audit", lambda c: c.fetch(sql, *where.params, _limit(limit)))
        return [v.audit_entry(row) for row in rows]

    async def activity(self, since: float, until: float, bucket_s: float = 60.0) -> Activity:
        start, end, width = float(since), float(until), float(bucket_s)
        if not (math.isfinite(start) and math.isfinite(end) and end > start and width > 0):
            raise InputRejected("activity needs since < until and a positive bucket width")
        buckets = math.ceil((end - start) / width)
        if buckets > MAX_BUCKETS:
            raise InputRejected(f"activity: at most {MAX_BUCKETS} buckets")

        async def op(conn: Any) -> Activity:
            counts = [0] * buckets
            for index, n in await conn.fetch(
                """SELECT floor((created_at - $1) / $3)::bigint, count(*) FROM messages
                   WHERE created_at >= $1 AND created_at < $2 GROUP BY 1""", start, end, width):
                counts[min(int(index), buckets - 1)] += n
            users, conversations = await conn.fetchrow(
                """SELECT count(DISTINCT user_id), count(DISTINCT conversation_id) FROM messages
                   WHERE created_at >= $1 AND created_at < $2""", start, end)
            latencies = await conn.fetch(
                """SELECT r.created_at - u.created_at FROM messages r JOIN messages u ON u.id = r.reply_to
                   WHERE r.created_at >= $1 AND r.created_at < $2 AND r.reply_to IS NOT NULL
                   ORDER BY r.id DESC LIMIT $3""", start, end, MAX_LATENCIES)
            return Activity(
                start, end, width, tuple(counts), users, conversations, tuple(max(0.0, row[0]) for row in latencies)
            )

        return await self._run("activity", op, snapshot=True)
