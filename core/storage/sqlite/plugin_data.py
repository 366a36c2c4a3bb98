"""Plugin tables of the SQLite store: a JSON key-value namespace per plugin, and jobs.

Mixed into :class:`~core.storage.sqlite.SQLiteStore`, so every write goes through the
engine's one writer; due jobs are claimed (``claim_jobs``) so one scheduler runs each. Rows that belong to a user (``user_id``) are part of the user's
export and are deleted by ``forget_user`` together with everything else about them.

JSON values are stored ASCII-escaped: any Python string round-trips exactly, lone
surrogates included, and no value can break the UTF-8 of the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from core.events import ConversationKey
from core.records import ScheduledJob
import core.storage.values as v
from core.storage.values import JOB_COLS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def plugin_rows_of(db: aiosqlite.Connection, user_id: str) -> tuple[list[tuple], list[tuple]]:
    """The plugin rows of one user (data, then jobs), for ``export_user``."""
    data = await db.execute_fetchall(
        "SELECT plugin, key, value, updated_at FROM plugin_data WHERE user_id = ? ORDER BY plugin, key", (user_id,)
    )
    jobs = await db.execute_fetchall(f"SELECT {JOB_COLS} FROM plugin_jobs WHERE {_JOB_OF_USER} ORDER BY id", (user_id,))
    return list(data), list(jobs)


async def forget_plugin_rows(db: aiosqlite.Connection, user_id: str) -> dict[str, int]:
    """Delete the plugin rows of one user, for ``forget_user``."""
    counts = {}
    for table, where in (("plugin_data", "user_id = ?"), ("plugin_jobs", _JOB_OF_USER)):
        cursor = await db.execute(f"DELETE FROM {table} WHERE {where}", (user_id,))
        counts[table] = cursor.rowcount
        await cursor.close()
    return counts


# When a job can next be claimed: its time, or the end of a live claim.
_FREE_AT = "CASE WHEN claimed_until > run_at THEN claimed_until ELSE run_at END"

# A job is the user's when it names them, or when it posts to their private chat
# (a Telegram DM's chat id is the user's id).
_JOB_OF_USER = "(user_id = ?1 OR (platform IS NOT NULL AND platform || ':' || chat_id = ?1))"


def _runnable(plugins: Sequence[str], platforms: Sequence[str]) -> tuple[str | None, list[str]]:
    names = [v.name(plugin, "plugin") for plugin in plugins]
    if not names:
        return None, []
    places = [v.name(platform, "platform") for platform in platforms]
    where = f"plugin IN ({', '.join('?' for _ in names)})"
    where += f" AND (platform IS NULL OR platform IN ({', '.join('?' for _ in places)}))" if places else " AND platform IS NULL"
    return where, names + places


class PluginDataMixin:
    """The plugin methods of the Store (see ``core.ports.PluginStore``)."""

    _clock: Callable[[], float]
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]

    # key-value ---------------------------------------------------------------------

    async def plugin_get(self, plugin: str, key: str, user_id: str = "") -> Any | None:
        params = (v.name(plugin, "plugin"), v.name(user_id, "user id", empty=True), v.name(key, "key"))

        async def op(db: aiosqlite.Connection) -> Any | None:
            rows = await db.execute_fetchall(
                "SELECT value FROM plugin_data WHERE plugin = ? AND user_id = ? AND key = ?", params
            )
            return json.loads(rows[0][0]) if rows else None

        return await self._read("plugin_get", op)

    async def plugin_set(self, plugin: str, key: str, value: Any, user_id: str = "") -> None:
        """Store JSON data under ``key``; ``None`` deletes it."""
        params = (v.name(plugin, "plugin"), v.name(user_id, "user id", empty=True), v.name(key, "key"))
        body = None if value is None else v.dump(value, f"plugin {plugin} key {key!r}")
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> None:
            if body is None:
                await db.execute("DELETE FROM plugin_data WHERE plugin = ? AND user_id = ? AND key = ?", params)
            else:
                await db.execute(
                    "INSERT OR REPLACE INTO plugin_data (plugin, user_id, key, value, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (*params, body, now),
                )

        await self._write("plugin_set", op)

    async def plugin_items(self, plugin: str, user_id: str = "", prefix: str = "") -> dict[str, Any]:
        """Every key (starting with ``prefix``) of the plugin's namespace, or of one user in it."""
        params = (v.name(plugin, "plugin"), v.name(user_id, "user id", empty=True), v.name(prefix, "prefix", empty=True))

        async def op(db: aiosqlite.Connection) -> dict[str, Any]:
            rows = await db.execute_fetchall(
                """SELECT key, value FROM plugin_data WHERE plugin = ?1 AND user_id = ?2
                   AND substr(key, 1, length(?3)) = ?3 ORDER BY key""",
                params,
            )
            return {key: json.loads(value) for key, value in rows}

        return await self._read("plugin_items", op)

    async def plugin_forget_user(self, plugin: str, user_id: str) -> int:
        """Delete one user's rows of one plugin (data and jobs); returns how many went."""
        params = (v.name(plugin, "plugin"), v.name(user_id, "user id"))

        async def op(db: aiosqlite.Connection) -> int:
            count = 0
            for sql in (
                "DELETE FROM plugin_data WHERE plugin = ?1 AND user_id = ?2",
                f"DELETE FROM plugin_jobs WHERE plugin = ?1 AND {_JOB_OF_USER.replace('?1', '?2')}",
            ):
                cursor = await db.execute(sql, params)
                count += cursor.rowcount
                await cursor.close()
            return count

        return await self._write("plugin_forget_user", op, atomic=True)

    # jobs --------------------------------------------------------------------------

    async def add_job(
        self,
        plugin: str,
        name: str,
        run_at: float,
        *,
        every: float | None = None,
        key: ConversationKey | None = None,
        user_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> ScheduledJob:
        params = (*v.job_values(plugin, name, run_at, every, key, user_id, payload), self._clock())

        async def op(db: aiosqlite.Connection) -> ScheduledJob:
            rows = await db.execute_fetchall(
                f"""INSERT INTO plugin_jobs (plugin, name, run_at, every, platform, chat_id, thread_id, user_id,
                                             payload, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {JOB_COLS}""",
                params,
            )
            return v.job(rows[0])

        return await self._write("add_job", op)

    async def get_job(self, job_id: int) -> ScheduledJob | None:
        async def op(db: aiosqlite.Connection) -> ScheduledJob | None:
            rows = await db.execute_fetchall(f"SELECT {JOB_COLS} FROM plugin_jobs WHERE id = ?", (int(job_id),))
            return v.job(rows[0]) if rows else None

        return await self._read("get_job", op)

    async def list_jobs(self, plugin: str, user_id: str | None = None, name: str | None = None) -> list[ScheduledJob]:
        """A plugin's jobs, soonest first; optionally only one user's or one handler's."""
        params = (
            v.name(plugin, "plugin"),
            None if user_id is None else v.name(user_id, "user id"),
            None if name is None else v.name(name, "job name"),
        )

        async def op(db: aiosqlite.Connection) -> list[ScheduledJob]:
            rows = await db.execute_fetchall(
                f"""SELECT {JOB_COLS} FROM plugin_jobs WHERE plugin = ?1
                    AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR name = ?3) ORDER BY run_at, id""",
                params,
            )
            return [v.job(row) for row in rows]

        return await self._read("list_jobs", op)

    async def due_jobs(
        self, now: float, plugins: Sequence[str], platforms: Sequence[str], limit: int = 100
    ) -> list[ScheduledJob]:
        """Due jobs of ``plugins`` that can run: no chat, or a chat on one of ``platforms``. Oldest first."""
        where, params = _runnable(plugins, platforms)
        if where is None:
            return []

        async def op(db: aiosqlite.Connection) -> list[ScheduledJob]:
            rows = await db.execute_fetchall(
                f"SELECT {JOB_COLS} FROM plugin_jobs WHERE run_at <= ? AND {where} ORDER BY run_at, id LIMIT ?",
                (v.seconds(now, "now"), *params, int(limit)),
            )
            return [v.job(row) for row in rows]

        return await self._read("due_jobs", op)

    async def claim_jobs(
        self, now: float, plugins: Sequence[str], platforms: Sequence[str], *, owner: str, lease_s: float,
        limit: int = 100,
    ) -> list[ScheduledJob]:
        """Claim the due jobs :meth:`due_jobs` would list that nobody holds, for ``lease_s``
        seconds; rescheduling or deleting a job ends its claim. Oldest first."""
        where, params = _runnable(plugins, platforms)
        if where is None:
            return []
        _, holder, span = v.lease_values("jobs", owner, lease_s)
        at = v.seconds(now, "now")

        async def op(db: aiosqlite.Connection) -> list[ScheduledJob]:
            rows = await db.execute_fetchall(
                f"""UPDATE plugin_jobs SET claimed_by = ?, claimed_until = ?
                    WHERE id IN (SELECT id FROM plugin_jobs WHERE run_at <= ? AND {where}
                                 AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY run_at, id LIMIT ?)
                    RETURNING {JOB_COLS}""",
                (holder, at + span, at, *params, at, int(limit)),
            )
            return sorted(map(v.job, rows), key=lambda job: (job.run_at, job.id))

        return await self._write("claim_jobs", op)

    async def next_job_at(self, plugins: Sequence[str], platforms: Sequence[str]) -> float | None:
        """When the next job that can run (see :meth:`due_jobs`) is due, or its claim ends."""
        where, params = _runnable(plugins, platforms)
        if where is None:
            return None

        async def op(db: aiosqlite.Connection) -> float | None:
            rows = await db.execute_fetchall(f"SELECT min({_FREE_AT}) FROM plugin_jobs WHERE {where}", params)
            return rows[0][0] if rows else None

        return await self._read("next_job_at", op)

    async def reschedule_job(self, job_id: int, run_at: float, attempts: int = 0) -> bool:
        params = (v.seconds(run_at, "run_at"), int(attempts), int(job_id))

        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute("""UPDATE plugin_jobs SET run_at = ?, attempts = ?, claimed_by = NULL, claimed_until = NULL
                   WHERE id = ?""", params)
            changed = cursor.rowcount
            await cursor.close()
            return bool(changed)

        return await self._write("reschedule_job", op)

    async def delete_job(self, job_id: int, plugin: str | None = None) -> bool:
        """Delete a job (only if it is ``plugin``'s, when given)."""
        params = (int(job_id), None if plugin is None else v.name(plugin, "plugin"))

        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute("DELETE FROM plugin_jobs WHERE id = ?1 AND (?2 IS NULL OR plugin = ?2)", params)
            changed = cursor.rowcount
            await cursor.close()
            return bool(changed)

        return await self._write("delete_job", op)
