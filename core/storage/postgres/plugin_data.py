"""Plugin tables of the PostgreSQL store: a JSON key-value namespace per plugin, and jobs.

The same methods as core/storage/sqlite/plugin_data.py. Claiming jobs is where several
processes meet: ``claim_jobs`` picks due, unclaimed rows with ``FOR UPDATE SKIP LOCKED``
and stamps them with the claimer and a lease in the same statement, so two schedulers
never get the same job, and a job whose claimer died is claimed again once the
lease has run out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from core.events import ConversationKey
from core.records import ScheduledJob
import core.storage.values as v
from core.storage.postgres.shared import count
from core.storage.values import JOB_COLS

# A job is the user's when it names them, or when it posts to their private chat.
_JOB_OF_USER = "(user_id = $1 OR (platform IS NOT NULL AND platform || ':' || chat_id = $1))"
_RUNNABLE = "plugin = ANY($1::text[]) AND (platform IS NULL OR platform = ANY($2::text[]))"
_FREE_AT = "CASE WHEN claimed_until > run_at THEN claimed_until ELSE run_at END"


async def plugin_rows_of(conn: asyncpg.Connection, user_id: str) -> tuple[list[Any], list[Any]]:
    """The plugin rows of one user (data, then jobs), for ``export_user``."""
    data = await conn.fetch(
        "SELECT plugin, key, value, updated_at FROM plugin_data WHERE user_id = $1 ORDER BY plugin, key", user_id
    )
    jobs = await conn.fetch(f"SELECT {JOB_COLS} FROM plugin_jobs WHERE {_JOB_OF_USER} ORDER BY id", user_id)
    return list(data), list(jobs)


async def forget_plugin_rows(conn: asyncpg.Connection, user_id: str) -> dict[str, int]:
    """Delete the plugin rows of one user, for ``forget_user``."""
    return {
        table: count(await conn.execute(f"DELETE FROM {table} WHERE {where}", user_id))
        for table, where in (("plugin_data", "user_id = $1"), ("plugin_jobs", _JOB_OF_USER))
    }


def _runnable(plugins: Sequence[str], platforms: Sequence[str]) -> tuple[list[str], list[str]]:
    return [v.name(p, "plugin") for p in plugins], [v.name(p, "platform") for p in platforms]


class PluginDataMixin:
    """The plugin methods of the Store (see ``core.ports.PluginStore``)."""

    _clock: Callable[[], float]
    _run: Callable[..., Awaitable[Any]]

    # key-value ---------------------------------------------------------------------

    async def plugin_get(self, plugin: str, key: str, user_id: str = "") -> Any | None:
        params = (v.name(plugin, "plugin"), v.name(user_id, "user id", empty=True), v.name(key, "key"))
        body = await self._run("plugin_get", lambda c: c.fetchval(
            "SELECT value FROM plugin_data WHERE plugin = $1 AND user_id = $2 AND key = $3", *params))
        return None if body is None else json.loads(body)

    async def plugin_set(self, plugin: str, key: str, value: Any, user_id: str = "") -> None:
        """Store JSON data under ``key``; ``None`` deletes it."""
        params = (v.name(plugin, "plugin"), v.name(user_id, "user id", empty=True), v.name(key, "key"))
        if value is None:
            await self._run("plugin_set", lambda c: c.execute(
                "DELETE FROM plugin_data WHERE plugin = $1 AND user_id = $2 AND key = $3", *params))
            return
        body, now = v.dump(value, f"plugin {plugin} key {key!r}"), self._clock()
        await self._run("plugin_set", lambda c: c.execute(
            """INSERT INTO plugin_data (plugin, user_id, key, value, updated_at) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (plugin, user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
            *params, body, now))

    async def plugin_items(self, plugin: str, user_id: str = "", prefix: str = "") -> dict[str, Any]:
        """Every key (starting with ``prefix``) of the plugin's namespace, or of one user in it."""
        params = (v.name(plugin, "plugin"), v.name(user_id, "user id", empty=True), v.name(prefix, "prefix", empty=True))
        rows = await self._run("plugin_items", lambda c: c.fetch(
            """SELECT key, value FROM plugin_data WHERE plugin = $1 AND user_id = $2
               AND left(key, length($3)) = $3 ORDER BY key COLLATE "C" """, *params))
        return {key: json.loads(value) for key, value in rows}

    async def plugin_forget_user(self, plugin: str, user_id: str) -> int:
        """Delete one user's rows of one plugin (data and jobs); returns how many went."""
        params = (v.name(user_id, "user id"), v.name(plugin, "plugin"))

        async def op(conn: asyncpg.Connection) -> int:
            data = count(await conn.execute("DELETE FROM plugin_data WHERE plugin = $2 AND user_id = $1", *params))
            jobs = count(await conn.execute(f"DELETE FROM plugin_jobs WHERE plugin = $2 AND {_JOB_OF_USER}", *params))
            return data + jobs

        return await self._run("plugin_forget_user", op, tx=True)

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
        row = await self._run("add_job", lambda c: c.fetchrow(
            f"""INSERT INTO plugin_jobs (plugin, name, run_at, every, platform, chat_id, thread_id, user_id,
                                         payload, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {JOB_COLS}""", *params))
        return v.job(row)

    async def get_job(self, job_id: int) -> ScheduledJob | None:
        row = await self._run("get_job", lambda c: c.fetchrow(
            f"SELECT {JOB_COLS} FROM plugin_jobs WHERE id = $1", int(job_id)))
        return v.job(row) if row else None

    async def list_jobs(self, plugin: str, user_id: str | None = None, name: str | None = None) -> list[ScheduledJob]:
        """A plugin's jobs, soonest first; optionally only one user's or one handler's."""
        params = (
            v.name(plugin, "plugin"),
            None if user_id is None else v.name(user_id, "user id"),
            None if name is None else v.name(name, "job name"),
        )
        rows = await self._run("list_jobs", lambda c: c.fetch(
            f"""SELECT {JOB_COLS} FROM plugin_jobs WHERE plugin = $1
                AND ($2::text IS NULL OR user_id = $2) AND ($3::text IS NULL OR name = $3) ORDER BY run_at, id""",
            *params))
        return [v.job(row) for row in rows]

    async def due_jobs(
        self, now: float, plugins: Sequence[str], platforms: Sequence[str], limit: int = 100
    ) -> list[ScheduledJob]:
        """Due jobs of ``plugins`` that can run: no chat, or a chat on one of ``platforms``. Oldest first."""
        names, places = _runnable(plugins, platforms)
        rows = await self._run("due_jobs", lambda c: c.fetch(
            f"SELECT {JOB_COLS} FROM plugin_jobs WHERE {_RUNNABLE} AND run_at <= $3 ORDER BY run_at, id LIMIT $4",
            names, places, v.seconds(now, "now"), int(limit)))
        return [v.job(row) for row in rows]

    async def claim_jobs(
        self, now: float, plugins: Sequence[str], platforms: Sequence[str], *, owner: str, lease_s: float,
        limit: int = 100,
    ) -> list[ScheduledJob]:
        """Claim due jobs nobody holds, for ``lease_s`` seconds (see the module docstring)."""
        names, places = _runnable(plugins, platforms)
        _, holder, span = v.lease_values("jobs", owner, lease_s)
        at = v.seconds(now, "now")
        rows = await self._run("claim_jobs", lambda c: c.fetch(
            f"""UPDATE plugin_jobs SET claimed_by = $5, claimed_until = $6
                WHERE id IN (SELECT id FROM plugin_jobs WHERE {_RUNNABLE} AND run_at <= $3
                             AND (claimed_until IS NULL OR claimed_until <= $3)
                             ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
                RETURNING {JOB_COLS}""", names, places, at, int(limit), holder, at + span))
        return sorted(map(v.job, rows), key=lambda job: (job.run_at, job.id))

    async def next_job_at(self, plugins: Sequence[str], platforms: Sequence[str]) -> float | None:
        """When the next job that can run is due, or its claim ends."""
        names, places = _runnable(plugins, platforms)
        return await self._run("next_job_at", lambda c: c.fetchval(
            f"SELECT min({_FREE_AT}) FROM plugin_jobs WHERE {_RUNNABLE}", names, places))

    async def reschedule_job(self, job_id: int, run_at: float, attempts: int = 0) -> bool:
        params = (v.seconds(run_at, "run_at"), int(attempts), int(job_id))
        return bool(count(await self._run("reschedule_job", lambda c: c.execute(
            """UPDATE plugin_jobs SET run_at = $1, attempts = $2, claimed_by = NULL, claimed_until = NULL
               WHERE id = $3""", *params))))

    async def delete_job(self, job_id: int, plugin: str | None = None) -> bool:
        """Delete a job (only if it is ``plugin``'s, when given)."""
        params = (int(job_id), None if plugin is None else v.name(plugin, "plugin"))
        return bool(count(await self._run("delete_job", lambda c: c.execute(
            "DELETE FROM plugin_jobs WHERE id = $1 AND ($2::text IS NULL OR plugin = $2)", *params))))
