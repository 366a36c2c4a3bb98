"""The SQLite store's queries about people: identity links, export, forget and stats.

Mixed into :class:`~core.storage.sqlite.SQLiteStore`, so every write goes through the
engine's one writer and each method is one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

import core.storage.values as v
from core.storage.sqlite.engine import changes, fetch_all, one
from core.storage.sqlite.plugin_data import forget_plugin_rows, plugin_rows_of


class PeopleMixin:
    _clock: Callable[[], float]
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]

    # -- identities across platforms -------------------------------------------------

    async def link_identities(self, a: str, b: str) -> list[str]:
        """Join the groups of ``a`` and ``b``; returns the merged group, sorted."""
        first, second, now = v.text(a, "user id"), v.text(b, "user id"), self._clock()

        async def op(db: aiosqlite.Connection) -> list[str]:
            groups = []
            for uid in (first, second):
                row = await one(db, "SELECT group_id FROM identity_links WHERE user_id = ?", (uid,))
                groups.append(row[0] if row else None)
            if first != second:
                if groups[0] is None and groups[1] is None:
                    (next_group,) = await one(db, "SELECT coalesce(max(group_id), 0) + 1 FROM identity_links") or (1,)
                    groups = [next_group, next_group]
                    for uid in (first, second):
                        await db.execute(
                            "INSERT INTO identity_links (user_id, group_id, linked_at) VALUES (?, ?, ?)",
                            (uid, next_group, now),
                        )
                elif groups[0] is None or groups[1] is None:
                    group = groups[0] if groups[0] is not None else groups[1]
                    loner = first if groups[0] is None else second
                    await db.execute(
                        "INSERT INTO identity_links (user_id, group_id, linked_at) VALUES (?, ?, ?)", (loner, group, now)
                    )
                    groups = [group, group]
                elif groups[0] != groups[1]:
                    await db.execute("UPDATE identity_links SET group_id = ? WHERE group_id = ?", (groups[0], groups[1]))
            return await _linked(db, first)

        return await self._write("link_identities", op, atomic=True)

    async def unlink_identity(self, user_id: str) -> bool:
        """Take ``user_id`` out of its group (a group left with one member dissolves)."""
        uid = v.text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> bool:
            return await _unlink(db, uid)

        return await self._write("unlink_identity", op, atomic=True)

    async def linked_identities(self, user_id: str) -> list[str]:
        """Every id linked with ``user_id``, itself included, sorted."""
        uid = v.text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> list[str]:
            return await _linked(db, uid)

        return await self._read("linked_identities", op)

    async def banned_identity(self, user_id: str) -> str | None:
        uid = v.text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> str | None:
            row = await one(db, _BANNED_IN_GROUP, {"uid": uid})
            return None if row is None else row[0]

        return await self._read("banned_identity", op)

    # -- privacy and stats -----------------------------------------------------------

    async def export_user(self, user_id: str) -> dict[str, Any]:
        """JSON-ready: ``user``, ``profile`` (preferences, consent, interest), ``memories``
        (superseded ones too), ``messages`` (their turns, the bot's replies to them and
        every turn of conversations keyed by their id), ``settings`` whose scope or value
        names them, ``linked_identities`` and ``audit`` entries that name them."""
        uid = v.text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> dict[str, Any]:
            user = await one(db, f"SELECT {v.USER_COLS} FROM users WHERE id = ?", (uid,))
            profile = await one(db, f"SELECT {v.PROFILE_COLS} FROM profiles WHERE user_id = ?", (uid,))
            memories = await fetch_all(db, f"SELECT {v.MEM_COLS} FROM memories WHERE user_id = ? ORDER BY id", (uid,))
            messages = await fetch_all(
                db,
                f"""SELECT m.id, c.key, m.role, m.user_id, m.text, m.created_at, m.reply_to
                    FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE m.id IN ({_USER_MESSAGE_IDS}) ORDER BY m.id""",
                {"uid": uid},
            )
            settings = await fetch_all(
                db,
                """SELECT scope, name, value FROM settings
                   WHERE (instr(scope, :uid) AND pb_mentions(scope, :uid))
                      OR (instr(value, :uid) AND pb_mentions(value, :uid))
                   ORDER BY scope, name""",
                {"uid": uid},
            )
            audit = await fetch_all(
                db,
                f"SELECT {v.AUDIT_COLS} FROM audit_log WHERE {_AUDIT_NAMES_USER} ORDER BY id",
                {"uid": uid, "json_uid": v.in_json(uid)},
            )
            plugin_data, plugin_jobs = await plugin_rows_of(db, uid)
            document = v.export_document(
                uid, user, profile, memories, messages, settings, await _linked(db, uid), audit, plugin_data, plugin_jobs
            )
            limits = []
            for table, column in _LIMIT_TABLES:  # rate-limit and quota state keyed by the user's id
                rows = await fetch_all(
                    db, f"SELECT {column} FROM {table} WHERE instr({column}, :uid) AND pb_mentions({column}, :uid)",
                    {"uid": uid},
                )
                limits += [{"table": table, "key": row[0]} for row in rows]
            document["limits"] = sorted(limits, key=lambda item: (item["table"], item["key"]))
            return document

        return await self._read("export_user", op, snapshot=True)

    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything :meth:`export_user` returns, in one transaction. Audit entries
        of other actors that name the user are kept with the id replaced by
        ``[forgotten]``. A banned user's ban survives as a SHA-256 of the id."""
        uid = v.text(user_id, "user id")
        names = {"uid": uid, "json_uid": v.in_json(uid)}
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> dict[str, int]:
            counts: dict[str, int] = {}
            banned = await one(db, "SELECT banned FROM users WHERE id = ?", (uid,))
            if banned and banned[0]:
                await db.execute(
                    "INSERT OR REPLACE INTO forgotten_bans (id_hash, at) VALUES (?, ?)", (v.id_hash(uid), now)
                )
            counts["messages"] = await changes(db, f"DELETE FROM messages WHERE id IN ({_USER_MESSAGE_IDS})", names)
            counts["conversations"] = await changes(
                db, "DELETE FROM conversations WHERE instr(key, :uid) AND pb_mentions(key, :uid)", names
            )
            counts["memories"] = await changes(db, "DELETE FROM memories WHERE user_id = :uid", names)
            counts["profiles"] = await changes(db, "DELETE FROM profiles WHERE user_id = :uid", names)
            counts["users"] = await changes(db, "DELETE FROM users WHERE id = :uid", names)
            counts["identity_links"] = int(await _unlink(db, uid))
            counts["settings"] = await changes(
                db,
                """DELETE FROM settings WHERE (instr(scope, :uid) AND pb_mentions(scope, :uid))
                   OR (instr(value, :uid) AND pb_mentions(value, :uid))""",
                names,
            )
            counts["processed_events"] = await changes(
                db, "DELETE FROM processed_events WHERE instr(event_id, :uid) AND pb_mentions(event_id, :uid)", names
            )
            counts["audit_log"] = await changes(db, "DELETE FROM audit_log WHERE actor = :uid", names)
            counts["audit_redacted"] = await changes(
                db,
                f"""UPDATE audit_log SET target = pb_redact(target, :uid), detail = pb_redact(detail, :json_uid)
                    WHERE {_AUDIT_NAMES_USER}""",
                names,
            )
            counts.update(await forget_plugin_rows(db, uid))
            limits = 0
            for table, column in _LIMIT_TABLES:
                limits += await changes(
                    db, f"DELETE FROM {table} WHERE instr({column}, :uid) AND pb_mentions({column}, :uid)", names
                )
            counts["limits"] = limits
            return counts

        return await self._write("forget_user", op, atomic=True)

    async def stats(self) -> dict[str, int]:
        async def op(db: aiosqlite.Connection) -> dict[str, int]:
            queries = v.STATS_QUERIES
            row = await one(db, "SELECT " + ", ".join(f"({sql})" for sql in queries.values()))
            assert row is not None
            return dict(zip(queries, row))

        return await self._read("stats", op)


# The user's turns, the bot's replies to them, and every turn of conversations keyed by
# their id (a Telegram DM's chat id is the user's id).
_USER_MESSAGE_IDS = """
    SELECT id FROM messages WHERE user_id = :uid
    UNION SELECT id FROM messages WHERE reply_to IN (SELECT id FROM messages WHERE user_id = :uid)
    UNION SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id
          WHERE instr(c.key, :uid) AND pb_mentions(c.key, :uid)"""

# Shared limit state keyed by names such as "user:telegram:123" (core/storage/values.py).
_LIMIT_TABLES = (("rate_buckets", "key"), ("limit_notices", "key"), ("quotas", "key"), ("leases", "name"))

_AUDIT_NAMES_USER = """(actor = :uid
    OR (instr(target, :uid) AND pb_mentions(target, :uid))
    OR (instr(detail, :json_uid) AND pb_mentions(detail, :json_uid)))"""


_BANNED_IN_GROUP = """WITH ids(id) AS (
    SELECT user_id FROM identity_links WHERE group_id = (SELECT group_id FROM identity_links WHERE user_id = :uid)
    UNION SELECT :uid)
SELECT id FROM ids WHERE id IN (SELECT id FROM users WHERE banned) OR pb_id_hash(id) IN (SELECT id_hash FROM forgotten_bans)
ORDER BY id LIMIT 1"""


async def _linked(db: aiosqlite.Connection, uid: str) -> list[str]:
    rows = await fetch_all(
        db,
        """SELECT user_id FROM identity_links
           WHERE group_id = (SELECT group_id FROM identity_links WHERE user_id = ?) ORDER BY user_id""",
        (uid,),
    )
    return [row[0] for row in rows] or [uid]


async def _unlink(db: aiosqlite.Connection, uid: str) -> bool:
    row = await one(db, "DELETE FROM identity_links WHERE user_id = ? RETURNING group_id", (uid,))
    if row is None:
        return False
    await db.execute(
        """DELETE FROM identity_links WHERE group_id = ?1
           AND (SELECT count(*) FROM identity_links WHERE group_id = ?1) < 2""",
        (row[0],),
    )
    return True
