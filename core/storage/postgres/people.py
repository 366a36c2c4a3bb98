"""The PostgreSQL store's queries about people: identity links, export, forget and stats.

"Names the user" means what SQLite's pb_mentions() means: the id as a whole
identifier (``telegram:12`` in ``chat:telegram:12``, not in ``telegram:123``). Here it
is a PostgreSQL regular expression built from the same rule (core.storage.values),
behind a cheap ``strpos`` filter.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

import core.storage.values as v
from core.storage.postgres.plugin_data import forget_plugin_rows, plugin_rows_of
from core.storage.postgres.shared import count

# pg_advisory_xact_lock key serialising identity-link changes across processes.
LINKS_LOCK = 0x50424F55


def id_regex(user_id: str) -> str:
    """The PostgreSQL (ARE) form of core.storage.values.id_pattern."""
    return rf"(?<![\w-]){re.escape(user_id)}(?!\w)"


def _names(column: str, needle: str, regex: str) -> str:
    return f"(strpos({column}, {needle}) > 0 AND {column} ~ {regex})"


# $1 the id, $2 its regex; $3 the id as inside JSON, $4 that regex.
_USER_MESSAGE_IDS = f"""
    SELECT id FROM messages WHERE user_id = $1
    UNION SELECT id FROM messages WHERE reply_to IN (SELECT id FROM messages WHERE user_id = $1)
    UNION SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id
          WHERE {_names("c.key", "$1", "$2")}"""
_AUDIT_NAMES_USER = f"""(actor = $1 OR {_names("target", "$1", "$2")} OR {_names("detail", "$3", "$4")})"""
_SETTING_NAMES_USER = f"({_names('scope', '$1', '$2')} OR {_names('value', '$1', '$2')})"
_LIMIT_TABLES = (("rate_buckets", "key"), ("limit_notices", "key"), ("quotas", "key"), ("leases", "name"))


_BANNED_IN_GROUP = """WITH ids(id) AS (
    SELECT user_id FROM identity_links WHERE group_id = (SELECT group_id FROM identity_links WHERE user_id = $1)
    UNION SELECT $1::text)
SELECT id FROM ids
WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = ids.id AND u.banned)
   OR EXISTS (SELECT 1 FROM forgotten_bans f WHERE f.id_hash = encode(sha256(convert_to(ids.id, 'UTF8')), 'hex'))
ORDER BY id COLLATE "C" LIMIT 1"""


async def _linked(conn: asyncpg.Connection, uid: str) -> list[str]:
    rows = await conn.fetch(
        """SELECT user_id FROM identity_links
           WHERE group_id = (SELECT group_id FROM identity_links WHERE user_id = $1) ORDER BY user_id COLLATE "C" """,
        uid,
    )
    return [row[0] for row in rows] or [uid]


async def _unlink(conn: asyncpg.Connection, uid: str) -> bool:
    group = await conn.fetchval("DELETE FROM identity_links WHERE user_id = $1 RETURNING group_id", uid)
    if group is None:
        return False
    await conn.execute(
        """DELETE FROM identity_links WHERE group_id = $1
           AND (SELECT count(*) FROM identity_links WHERE group_id = $1) < 2""",
        group,
    )
    return True


class PeopleMixin:
    _clock: Callable[[], float]
    _run: Callable[..., Awaitable[Any]]

    # -- identities across platforms -------------------------------------------------

    async def link_identities(self, a: str, b: str) -> list[str]:
        """Join the groups of ``a`` and ``b``; returns the merged group, sorted."""
        first, second, now = v.text(a, "user id"), v.text(b, "user id"), self._clock()

        async def op(conn: asyncpg.Connection) -> list[str]:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LINKS_LOCK)
            groups = [
                await conn.fetchval("SELECT group_id FROM identity_links WHERE user_id = $1", uid)
                for uid in (first, second)
            ]
            if first != second:
                insert = "INSERT INTO identity_links (user_id, group_id, linked_at) VALUES ($1, $2, $3)"
                if groups[0] is None and groups[1] is None:
                    group = await conn.fetchval("SELECT coalesce(max(group_id), 0) + 1 FROM identity_links")
                    for uid in (first, second):
                        await conn.execute(insert, uid, group, now)
                elif groups[0] is None or groups[1] is None:
                    group = groups[0] if groups[0] is not None else groups[1]
                    await conn.execute(insert, first if groups[0] is None else second, group, now)
                elif groups[0] != groups[1]:
                    await conn.execute("UPDATE identity_links SET group_id = $1 WHERE group_id = $2", *groups)
            return await _linked(conn, first)

        return await self._run("link_identities", op, tx=True)

    async def unlink_identity(self, user_id: str) -> bool:
        """Take ``user_id`` out of its group (a group left with one member dissolves)."""
        uid = v.text(user_id, "user id")

        async def op(conn: asyncpg.Connection) -> bool:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LINKS_LOCK)
            return await _unlink(conn, uid)

        return await self._run("unlink_identity", op, tx=True)

    async def linked_identities(self, user_id: str) -> list[str]:
        uid = v.text(user_id, "user id")
        return await self._run("linked_identities", lambda c: _linked(c, uid))

    async def banned_identity(self, user_id: str) -> str | None:
        uid = v.text(user_id, "user id")
        return await self._run("banned_identity", lambda c: c.fetchval(_BANNED_IN_GROUP, uid))

    # -- privacy and stats -----------------------------------------------------------

    async def export_user(self, user_id: str) -> dict[str, Any]:
        """The same document as SQLiteStore.export_user, from one snapshot."""
        uid = v.text(user_id, "user id")
        json_uid = v.in_json(uid)
        names = (uid, id_regex(uid), json_uid, id_regex(json_uid))

        async def op(conn: asyncpg.Connection) -> dict[str, Any]:
            user = await conn.fetchrow(f"SELECT {v.USER_COLS} FROM users WHERE id = $1", uid)
            profile = await conn.fetchrow(f"SELECT {v.PROFILE_COLS} FROM profiles WHERE user_id = $1", uid)
            memories = await conn.fetch(f"SELECT {v.MEM_COLS} FROM memories WHERE user_id = $1 ORDER BY id", uid)
            messages = await conn.fetch(
                f"""SELECT m.id, c.key, m.role, m.user_id, m.text, m.created_at, m.reply_to
                    FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE m.id IN ({_USER_MESSAGE_IDS}) ORDER BY m.id""", *names[:2])
            settings = await conn.fetch(
                f'SELECT scope, name, value FROM settings WHERE {_SETTING_NAMES_USER} ORDER BY scope COLLATE "C", name COLLATE "C"',
                *names[:2])
            audit = await conn.fetch(
                f"SELECT {v.AUDIT_COLS} FROM audit_log WHERE {_AUDIT_NAMES_USER} ORDER BY id", *names)
            plugin_data, plugin_jobs = await plugin_rows_of(conn, uid)
            document = v.export_document(
                uid, user, profile, memories, messages, settings, await _linked(conn, uid), audit, plugin_data,
                plugin_jobs,
            )
            limits = []
            for table, column in _LIMIT_TABLES:  # rate-limit and quota state keyed by the user's id
                rows = await conn.fetch(f"SELECT {column} FROM {table} WHERE {_names(column, '$1', '$2')}", *names[:2])
                limits += [{"table": table, "key": row[0]} for row in rows]
            document["limits"] = sorted(limits, key=lambda item: (item["table"], item["key"]))
            return document

        return await self._run("export_user", op, snapshot=True)

    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything :meth:`export_user` returns, in one transaction (see SQLiteStore.forget_user)."""
        uid = v.text(user_id, "user id")
        json_uid = v.in_json(uid)
        names = (uid, id_regex(uid), json_uid, id_regex(json_uid))
        now = self._clock()

        async def op(conn: asyncpg.Connection) -> dict[str, int]:
            counts: dict[str, int] = {}
            if await conn.fetchval("SELECT banned FROM users WHERE id = $1", uid):
                await conn.execute(
                    """INSERT INTO forgotten_bans (id_hash, at) VALUES ($1, $2)
                       ON CONFLICT (id_hash) DO UPDATE SET at = excluded.at""", v.id_hash(uid), now)
            counts["messages"] = count(await conn.execute(
                f"DELETE FROM messages WHERE id IN ({_USER_MESSAGE_IDS})", *names[:2]))
            counts["conversations"] = count(await conn.execute(
                f"DELETE FROM conversations WHERE {_names('key', '$1', '$2')}", *names[:2]))
            for table, column in (("memories", "user_id"), ("profiles", "user_id"), ("users", "id")):
                counts[table] = count(await conn.execute(f"DELETE FROM {table} WHERE {column} = $1", uid))
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LINKS_LOCK)
            counts["identity_links"] = int(await _unlink(conn, uid))
            counts["settings"] = count(await conn.execute(
                f"DELETE FROM settings WHERE {_SETTING_NAMES_USER}", *names[:2]))
            counts["processed_events"] = count(await conn.execute(
                f"DELETE FROM processed_events WHERE {_names('event_id', '$1', '$2')}", *names[:2]))
            counts["audit_log"] = count(await conn.execute("DELETE FROM audit_log WHERE actor = $1", uid))
            counts["audit_redacted"] = count(await conn.execute(
                f"""UPDATE audit_log SET target = regexp_replace(target, $2, '{v.FORGOTTEN}', 'g'),
                                         detail = regexp_replace(detail, $4, '{v.FORGOTTEN}', 'g')
                    WHERE {_AUDIT_NAMES_USER}""", *names))
            counts.update(await forget_plugin_rows(conn, uid))
            limits = 0
            for table, column in _LIMIT_TABLES:
                limits += count(await conn.execute(f"DELETE FROM {table} WHERE {_names(column, '$1', '$2')}",
                                                   *names[:2]))
            counts["limits"] = limits
            return counts

        return await self._run("forget_user", op, tx=True)

    async def stats(self) -> dict[str, int]:
        queries = v.STATS_QUERIES
        row = await self._run("stats", lambda c: c.fetchrow(
            "SELECT " + ", ".join(f"({sql})" for sql in queries.values())))
        return {name: int(value) for name, value in zip(queries, row)}
