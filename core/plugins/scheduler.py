"""Runs plugins' scheduled jobs: stored in the database, so they survive restarts.

One task per bot process sleeps until the next job is due (or until a job is scheduled).
Due jobs are claimed, not just read: ``Store.claim_jobs`` gives each due job to exactly
one scheduler for a lease (a little longer than the job timeout), so several processes
on one PostgreSQL database deliver each job once. Running it and then rescheduling or
deleting it ends the claim; if the claimer dies before that, the lease runs out and
another process claims the job and retries it.
A job whose chat is on a platform the bot is not connected to waits for it. After a
successful run a one-off job is deleted, a repeating job moves to its next time
(missed runs during downtime are not replayed one by one). A failing job is retried
with backoff; a job whose chat no longer exists is dropped and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

from core.errors import NotFound, PermissionDenied
from core.http.metrics import Metrics
from core.plugins.wiring import LoadedPlugin, PluginWiring
from core.ports import PluginStore
from core.records import ScheduledJob



class JobHost(Protocol):
    """What the scheduler needs of the plugin manager (core.plugins.manager.PluginManager)."""

    store: PluginStore
    loaded: Mapping[str, LoadedPlugin]
    wiring: PluginWiring  # runs a job under the watchdog; a fatal failure disables its plugin

    def active_names(self) -> list[str]: ...

    def connected_platforms(self) -> list[str]: ...

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # a one-off job failing this often is dropped
MAX_SLEEP_S = 30.0  # re-check at least this often (a platform may have connected)
BATCH = 100
LEASE_MARGIN_S = 30.0  # a claim outlives the job timeout by this much

_running_at: contextvars.ContextVar[float | None] = contextvars.ContextVar("plugin_job_time", default=None)


def retry_delay(attempts: int) -> float:
    """Backoff after the ``attempts``-th failure: 30 s, 1 min, 2 min… at most an hour."""
    return min(30.0 * 2 ** (attempts - 1), 3600.0)


def next_occurrence(job: ScheduledJob, now: float) -> float:
    """The first run of a repeating job after ``now`` on its own grid."""
    assert job.every
    if job.run_at > now:
        return job.run_at
    periods = math.floor((now - job.run_at) / job.every) + 1
    return job.run_at + periods * job.every


class Scheduler:
    def __init__(
        self,
        manager: JobHost,
        *,
        clock: Callable[[], float] = time.time,
        job_timeout_s: float = 60.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._manager = manager
        self._metrics = metrics if metrics is not None else Metrics()
        self._clock = clock
        self._job_timeout_s = job_timeout_s
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # Who holds a claim, for the operator reading the jobs table: host, pid, a nonce.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = job_timeout_s + LEASE_MARGIN_S

    def now(self) -> float:
        """The time as jobs see it: the run's ``now`` inside a job, else the clock."""
        running = _running_at.get()
        return self._clock() if running is None else running

    def wake(self) -> None:
        """Look at the schedule again now (a job was added, a platform connected)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="plugin-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
                next_at = await self._manager.store.next_job_at(
                    self._manager.active_names(), self._manager.connected_platforms()
                )
                delay = MAX_SLEEP_S if next_at is None else min(max(next_at - self._clock(), 0.0), MAX_SLEEP_S)
            except Exception:
                log.exception("plugin scheduler: could not read the schedule")
                delay = MAX_SLEEP_S
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel of stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def run_due(self, now: float | None = None) -> int:
        """Run every job due at ``now`` (default: the clock); returns how many ran."""
        async with self._lock:
            now = self._clock() if now is None else now
            token = _running_at.set(now)
            try:
                return await self._run_batches(now)
            finally:
                _running_at.reset(token)

    async def _run_batches(self, now: float) -> int:
        ran = 0
        plugins, platforms = self._manager.active_names(), self._manager.connected_platforms()
        for job in await self._manager.store.due_jobs(now, plugins, platforms, limit=BATCH):
            self._metrics.jobs_due.labels(job.plugin).inc()  # seen due here; another process may claim it
        while True:
            jobs = await self._manager.store.claim_jobs(
                now, plugins, platforms, owner=self.owner, lease_s=self.lease_s, limit=BATCH,
            )
            for job in jobs:
                self._metrics.jobs_claimed.labels(job.plugin).inc()
            if not jobs:
                return ran
            await asyncio.gather(*(self._run(job, now) for job in jobs))
            ran += len(jobs)

    async def _run(self, job: ScheduledJob, now: float) -> None:
        store = self._manager.store
        loaded = self._manager.loaded.get(job.plugin)
        handler = loaded.plugin.jobs.get(job.name) if loaded else None
        if loaded is None or handler is None:
            log.warning("plugin %s: job %d has no handler %r any more; dropped", job.plugin, job.id, job.name)
            await store.delete_job(job.id)
            return
        try:
            async with asyncio.timeout(self._job_timeout_s):
                next_run = await self._manager.wiring.watched(loaded, f"job {job.name}", handler(loaded.ctx, job))
        except (NotFound, PermissionDenied) as exc:
            where = job.key.qualified if job.key else "its chat"
            loaded.ctx.log.warning(
                "plugin %s: job %d (%s) dropped: cannot post to %s: %s", job.plugin, job.id, job.name, where, exc
            )
            await store.delete_job(job.id)
            return
        except Exception as exc:
            if loaded.disabled:  # just now (logged once): left claimed, it waits for a fixed plugin
                return
            attempts = job.attempts + 1
            loaded.ctx.log.error(
                "plugin %s: job %d (%s) failed (attempt %d): %s",
                job.plugin, job.id, job.name, attempts, exc, exc_info=exc,
            )
            if job.every:
                await store.reschedule_job(job.id, next_occurrence(job, now), attempts)
            elif attempts >= MAX_ATTEMPTS:
                loaded.ctx.log.error("plugin %s: job %d (%s) dropped after %d attempts", job.plugin, job.id, job.name, attempts)
                await store.delete_job(job.id)
            else:
                await store.reschedule_job(job.id, now + retry_delay(attempts), attempts)
            return
        self._metrics.jobs_delivered.labels(job.plugin).inc()
        if isinstance(next_run, (int, float)) and not isinstance(next_run, bool):
            if not next_run > now:
                loaded.ctx.log.warning("plugin %s: job %d asked to run again in the past; in a minute", job.plugin, job.id)
                next_run = now + 60.0
            await store.reschedule_job(job.id, float(next_run), 0)
        elif job.every:
            await store.reschedule_job(job.id, next_occurrence(job, now), 0)
        else:
            await store.delete_job(job.id)
