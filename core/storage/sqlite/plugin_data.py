"""Plugin tables of the SQLite store: a JSON key-value namespace per plugin, and jobs.

Mixed into :class:`~core.storage.sqlite.SQLiteStore`, so every write goes through the
store's one writer. Rows that belong to a user (``user_id``) are part of the user's
export and are deleted by ``forget_user`` together with everything else about them.

JSON values are stored ASCII-escaped: any Python string round-trips exactly, lone
surrogates included, and no value can break the UTF-8 of the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from core.errors import InputRejected
from core.events import ConversationKey
from core.records import ScheduledJob

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MAX_VALUE_BYTES = 1_000_000
MAX_KEY_CHARS = 200

_JOB_COLS = "id, plugin, name, run_at, every, platform, chat_id, thread_id, user_id, payload, attempts, created_at"


def _name(value: object, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InputRejected(f"{what} must be a string, not {type(value).__name__}")
    if (not value and not empty) or len(value) > MAX_KEY_CHARS:
        raise InputRejected(f"{what} must be 1-{MAX_KEY_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputRejected(f"{what} holds a lone surrogate") from None
    return value


def _dump(value: object, what: str) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputRejected(f"{what}: not JSON data: {exc}") from None
    if len(text) > MAX_VALUE_BYTES:
        raise InputRejected(f"{what}: over {MAX_VALUE_BYTES} bytes as JSON")
    return text


def _time(value: object, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InputRejected(f"{what} must be a finite number of seconds")
    return float(value)


def _job(row: tuple) -> ScheduledJob:
    key = ConversationKey(row[5], row[6], row[7]) if row[5] is not None else None
    every = None if row[4] is None else float(row[4])
    return ScheduledJob(row[0], row[1], row[2], float(row[3]), every, key, row[8], json.loads(row[9]), row[10], row[11])


async def plugin_rows_of(db: aiosqlite.Connection, user_id: str) -> dict[str, Any]:
    """The plugin rows of one user, for ``export_user``."""
    data = await db.execute_fetchall(
        "SELECT plugin, key, value, updated_at FROM plugin_data WHERE user_id = ? ORDER BY plugin, key", (user_id,)
    )
    jobs = await db.execute_fetchall(f"SELECT {_JOB_COLS} FROM plugin_jobs WHERE {_JOB_OF_USER} ORDER BY id", (user_id,))
    return {
        "plugin_data": [
            {"plugin": plugin, "key": key, "value": json.loads(value), "updated_at": at} for plugin, key, value, at in data
        ],
        "plugin_jobs": [
            {
                "id": job.id,
                "plugin": job.plugin,
                "name": job.name,
                "run_at": job.run_at,
                "every": job.every,
                "chat": job.key.qualified if job.key else None,
                "payload": job.payload,
            }
            for job in map(_job, jobs)
        ],
    }


async def forget_plugin_rows(db: aiosqlite.Connection, user_id: str) -> dict[str, int]:
    """Delete the plugin rows of one user, for ``forget_user``."""
    counts = {}
    for table, where in (("plugin_data", "user_id = ?"), ("plugin_jobs", _JOB_OF_USER)):
        cursor = await db.execute(f"DELETE FROM {table} WHERE {where}", (user_id,))
        counts[table] = cursor.rowcount
        await cursor.close()
    return counts


# A job is the user's when it names them, or when it posts to their private chat
# (a Telegram DM's chat id is the user's id).
_JOB_OF_USER = "(user_id = ?1 OR (platform IS NOT NULL AND platform || ':' || chat_id = ?1))"


def _runnable(plugins: Sequence[str], platforms: Sequence[str]) -> tuple[str | None, list[str]]:
    names = [_name(plugin, "plugin") for plugin in plugins]
    if not names:
        return None, []
    places = [_name(platform, "platform") for platform in platforms]
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
        params = (_name(plugin, "plugin"), _name(user_id, "user id", empty=True), _name(key, "key"))

        async def op(db: aiosqlite.Connection) -> Any | None:
            rows = await db.execute_fetchall(
                "SELECT value FROM plugin_data WHERE plugin = ? AND user_id = ? AND key = ?", params
            )
            return json.loads(rows[0][0]) if rows else None

        return await self._read("plugin_get", op)

    async def plugin_set(self, plugin: str, key: str, value: Any, user_id: str = "") -> None:
        """Store JSON data under ``key``; ``None`` deletes it."""
        params = (_name(plugin, "plugin"), _name(user_id, "user id", empty=True), _name(key, "key"))
        body = None if value is None else _dump(value, f"plugin {plugin} key {key!r}")
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
        params = (_name(plugin, "plugin"), _name(user_id, "user id", empty=True), _name(prefix, "prefix", empty=True))

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
        params = (_name(plugin, "plugin"), _name(user_id, "user id"))

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
        if every is not None and _time(every, "every") <= 0:
            raise InputRejected("every must be a positive number of seconds")
        if key is not None and not isinstance(key, ConversationKey):
            raise InputRejected(f"key must be a ConversationKey, not {type(key).__name__}")
        if payload is not None and not isinstance(payload, dict):
            raise InputRejected("payload must be a dict")
        where = (
            (_name(key.platform, "platform"), _name(key.chat_id, "chat id"), key.thread_id and _name(key.thread_id, "thread id"))
            if key
            else (None, None, None)
        )
        params = (
            _name(plugin, "plugin"),
            _name(name, "job name"),
            _time(run_at, "run_at"),
            every,
            *where,
            None if user_id is None else _name(user_id, "user id"),
            _dump(payload or {}, f"plugin {plugin} job {name} payload"),
            self._clock(),
        )

        async def op(db: aiosqlite.Connection) -> ScheduledJob:
            rows = await db.execute_fetchall(
                f"""INSERT INTO plugin_jobs (plugin, name, run_at, every, platform, chat_id, thread_id, user_id,
                                             payload, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_JOB_COLS}""",
                params,
            )
            return _job(rows[0])

        return await self._write("add_job", op)

    async def get_job(self, job_id: int) -> ScheduledJob | None:
        async def op(db: aiosqlite.Connection) -> ScheduledJob | None:
            rows = await db.execute_fetchall(f"SELECT {_JOB_COLS} FROM plugin_jobs WHERE id = ?", (int(job_id),))
            return _job(rows[0]) if rows else None

        return await self._read("get_job", op)

    async def list_jobs(self, plugin: str, user_id: str | None = None, name: str | None = None) -> list[ScheduledJob]:
        """A plugin's jobs, soonest first; optionally only one user's or one handler's."""
        params = (
            _name(plugin, "plugin"),
            None if user_id is None else _name(user_id, "user id"),
            None if name is None else _name(name, "job name"),
        )

        async def op(db: aiosqlite.Connection) -> list[ScheduledJob]:
            rows = await db.execute_fetchall(
                f"""SELECT {_JOB_COLS} FROM plugin_jobs WHERE plugin = ?1
                    AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR name = ?3) ORDER BY run_at, id""",
                params,
            )
            return [_job(row) for row in rows]

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
                f"SELECT {_JOB_COLS} FROM plugin_jobs WHERE run_at <= ? AND {where} ORDER BY run_at, id LIMIT ?",
                (_time(now, "now"), *params, int(limit)),
            )
            return [_job(row) for row in rows]

        return await self._read("due_jobs", op)

    async def next_job_at(self, plugins: Sequence[str], platforms: Sequence[str]) -> float | None:
        """When the next job that can run (see :meth:`due_jobs`) is due."""
        where, params = _runnable(plugins, platforms)
        if where is None:
            return None

        async def op(db: aiosqlite.Connection) -> float | None:
            rows = await db.execute_fetchall(f"SELECT min(run_at) FROM plugin_jobs WHERE {where}", params)
            return rows[0][0] if rows else None

        return await self._read("next_job_at", op)

    async def reschedule_job(self, job_id: int, run_at: float, attempts: int = 0) -> bool:
        params = (_time(run_at, "run_at"), int(attempts), int(job_id))

        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute("UPDATE plugin_jobs SET run_at = ?, attempts = ? WHERE id = ?", params)
            changed = cursor.rowcount
            await cursor.close()
            return bool(changed)

        return await self._write("reschedule_job", op)

    async def delete_job(self, job_id: int, plugin: str | None = None) -> bool:
        """Delete a job (only if it is ``plugin``'s, when given)."""
        params = (int(job_id), None if plugin is None else _name(plugin, "plugin"))

        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute("DELETE FROM plugin_jobs WHERE id = ?1 AND (?2 IS NULL OR plugin = ?2)", params)
            changed = cursor.rowcount
            await cursor.close()
            return bool(changed)

        return await self._write("delete_job", op)
