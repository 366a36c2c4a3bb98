"""The SQLite engine under :class:`~core.storage.sqlite.SQLiteStore`: connections, the
one writer with group commit, the readers, and the one-process rule.

Concurrency. Every write goes through one connection driven by one task: it drains a
queue of operations and runs all it finds in one transaction (group commit), each
operation inside a savepoint when it has several statements, so one failing operation
never undoes its neighbours. An operation found alone skips what it does not need (each
statement is a thread hop): its own transaction instead of a savepoint, or autocommit
when it needs none. Each caller awaits its own result. Single-statement reads
use a second connection; reads of several statements use a third one inside a read
transaction, so they see one consistent snapshot. In WAL mode readers never wait for
the writer, and with one writer nothing ever waits for a lock (busy_timeout only
covers other programs, e.g. an operator's sqlite3 shell). ``":memory:"`` runs
everything on one connection through the writer queue.

One bot process. SQLite serves one bot process: a second one on the same file would
run a second scheduler and a second writer. A process that serves chats calls
``claim_bot_process()`` (``personabot run`` does), which takes an exclusive ``flock`` on
the database file until the store closes; a second bot process is refused with a
message naming PostgreSQL (the store for several processes). The lock goes with the
process, so a crashed bot never blocks its restart. Operator tools (users export and
forget, access approve, the standalone console) open the file beside a running bot
without claiming it, under SQLite's own file locking (busy_timeout).

Durability. ``synchronous=NORMAL`` is safe with WAL: a commit appends checksummed frames
to the WAL and the fsync happens at checkpoints. A crashed or killed process loses
nothing (the pages are in the OS cache); a power cut may lose the last few commits but
never corrupts the file or splits a transaction.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from core.errors import PersonabotError, StorageError
from core.storage.sqlite.migrations import migrate
from core.storage.values import id_hash, mentions, redact

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[aiosqlite.Connection], Awaitable[T]]

BUSY_TIMEOUT_MS = 5000
MAX_BATCH = 512  # operations per group commit


async def one(db: aiosqlite.Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> tuple | None:
    rows = await db.execute_fetchall(sql, params)
    return rows[0] if rows else None


async def fetch_all(db: aiosqlite.Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
    return list(await db.execute_fetchall(sql, params))


async def changes(db: aiosqlite.Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
    """Rows changed by one INSERT/UPDATE/DELETE (sqlite3 reports -1 for a statement
    starting with WITH, hence the check)."""
    cursor = await db.execute(sql, params)
    count = cursor.rowcount
    await cursor.close()
    if count < 0:
        raise StorageError(f"no row count for: {sql.split()[0]}")
    return count


def _mentions(value: object, user_id: str) -> bool:
    """SQL function pb_mentions(text, id)."""
    return mentions(value, user_id)


def _redact(value: object, user_id: str) -> object:
    """SQL function pb_redact(text, id)."""
    return redact(value, user_id)


class SQLiteEngine:
    """Lifecycle, writer and readers; the queries live in the store classes built on it."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._memory = str(path) == ":memory:"
        self.path: Path | str = ":memory:" if self._memory else Path(path).expanduser()
        self._clock = clock
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._snapshot: aiosqlite.Connection | None = None
        self._snapshot_lock = asyncio.Lock()
        self._queue: asyncio.Queue[tuple[str, Op[Any], bool, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._open = False
        self._process_lock: int | None = None  # fd holding the one-process flock
        self.write_batches = 0  # transactions committed by the writer (bench: ops per commit)
        self.write_ops = 0
        self._latency: Callable[[str, float], None] | None = None

    def observe_latency(self, observer: Callable[[str, float], None] | None) -> None:
        """Call ``observer(operation, seconds)`` after every read and write (core.http metrics)."""
        self._latency = observer

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> "SQLiteEngine":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, apply pending migrations and start the writer. Raises StorageError."""
        if self._open:
            return
        where = str(self.path)
        if not self._memory:
            assert isinstance(self.path, Path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Chats are personal data: create the file (and so its -wal/-shm) owner-only.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            except OSError as exc:
                raise StorageError(f"cannot open database {where}: {exc.strerror or exc}") from None
        try:
            self._writer = await self._connect(writer=True)
            await migrate(self._writer, where)
            if not self._memory:
                self._reader = await self._connect(writer=False)
                self._snapshot = await self._connect(writer=False)
        except BaseException as exc:
            await self._close_connections()
            self._unlock_process()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open database {where}: {exc}") from None
            raise
        self._queue = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._write_loop(), name=f"sqlite-writer:{where}")
        self._open = True

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if not self._open:
            return
        self._open = False
        self._queue.put_nowait(None)
        if self._writer_task is not None:
            await self._writer_task
        if self._writer is not None:
            with suppress(sqlite3.Error):
                await self._writer.execute("PRAGMA optimize")
        await self._close_connections()
        self._unlock_process()

    async def claim_bot_process(self) -> None:
        """Hold an exclusive flock on the file until close; another holder is another bot process."""
        if not self._open:
            raise StorageError("claim_bot_process: the store is not open")
        if self._memory or self._process_lock is not None:
            return
        where = str(self.path)
        self._process_lock = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(self._process_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._unlock_process()
            raise StorageError(
                f"{where} is already open in another personabot process; SQLite serves one process. "
                'Stop the other one, or move to PostgreSQL for several ([storage] url = "postgresql://…", '
                "see docs/scaling.md)"
            ) from None

    def _unlock_process(self) -> None:
        fd, self._process_lock = self._process_lock, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    async def _connect(self, *, writer: bool) -> aiosqlite.Connection:
        db = await aiosqlite.connect(str(self.path), isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA foreign_keys = ON")
            if writer and not self._memory:
                (mode,) = await one(db, "PRAGMA journal_mode = WAL") or ("?",)
                if mode != "wal":
                    log.warning("%s: journal mode %s instead of WAL; readers will wait for writers", self.path, mode)
            await db.execute("PRAGMA synchronous = NORMAL")
            if not writer:
                await db.execute("PRAGMA query_only = ON")
            await db.create_function("pb_mentions", 2, _mentions, deterministic=True)
            await db.create_function("pb_redact", 2, _redact, deterministic=True)
            await db.create_function("pb_id_hash", 1, id_hash, deterministic=True)
        except BaseException:
            await db.close()
            raise
        return db

    async def _close_connections(self) -> None:
        for name in ("_snapshot", "_reader", "_writer"):
            db = getattr(self, name)
            setattr(self, name, None)
            if db is not None:
                with suppress(sqlite3.Error):
                    await db.close()

    # -- the writer ------------------------------------------------------------------

    async def _write(self, what: str, op: Op[T], *, atomic: bool = False) -> T:
        """Queue ``op`` for the writer and wait for its result. ``atomic``: several statements."""
        if not self._open:
            raise StorageError(f"{what}: the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self._queue.put_nowait((what, op, atomic, future))
        try:
            return await future
        finally:
            if self._latency is not None:
                self._latency(what, time.perf_counter() - started)  # queueing for the writer included

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            batch = []
            while item is not None:
                batch.append(item)
                if len(batch) >= MAX_BATCH or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            try:
                await self._commit_batch(batch)
            except BaseException as exc:  # a bug here must not leave callers waiting forever
                error = exc if isinstance(exc, Exception) else StorageError("the store is closing")
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise

    async def _commit_batch(self, batch: list[tuple[str, Op[Any], bool, asyncio.Future[Any]]]) -> None:
        batch = [item for item in batch if not item[3].done()]  # skip callers that gave up
        if not batch:
            return
        db = self._writer
        assert db is not None
        outcomes: list[tuple[Any, BaseException | None]] = []
        if len(batch) == 1 and not batch[0][2]:
            # One operation that needs no transaction (not atomic): in autocommit, BEGIN and
            # COMMIT would be two thread hops more than its statement (issue 16).
            what, op, _, _ = batch[0]
            outcomes.append(await self._run(db, what, op, False))
            self._settle(batch, outcomes)
            return
        lone = len(batch) == 1  # one operation of several statements: its transaction is its savepoint
        try:
            await db.execute("BEGIN IMMEDIATE")
            for what, op, atomic, _ in batch:
                outcome = await self._run(db, what, op, atomic and not lone)
                if not db.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error):
                    # nothing of this batch was kept.
                    raise StorageError(f"{what}: transaction aborted: {outcome[1]}")
                outcomes.append(outcome)
            await db.execute("ROLLBACK" if lone and outcomes[0][1] is not None else "COMMIT")
        except Exception as exc:
            with suppress(sqlite3.Error):
                if db.in_transaction:
                    await db.execute("ROLLBACK")
            error = exc if isinstance(exc, PersonabotError) else StorageError(f"commit failed: {exc}")
            outcomes = [(None, error)] * len(batch)
        self._settle(batch, outcomes)

    def _settle(self, batch: list[tuple[str, Op[Any], bool, asyncio.Future[Any]]],
                outcomes: list[tuple[Any, BaseException | None]]) -> None:
        self.write_batches += 1
        self.write_ops += len(batch)
        for (*_, future), (result, error) in zip(batch, outcomes):
            if future.done():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    @staticmethod
    async def _run(db: aiosqlite.Connection, what: str, op: Op[Any], atomic: bool) -> tuple[Any, BaseException | None]:
        try:
            if atomic:
                await db.execute("SAVEPOINT op")
            result = await op(db)
            if atomic:
                await db.execute("RELEASE op")
            return result, None
        except Exception as exc:
            if atomic and db.in_transaction:
                with suppress(sqlite3.Error):
                    await db.execute("ROLLBACK TO op")
                    await db.execute("RELEASE op")
            return None, translate(what, exc)

    # -- readers ---------------------------------------------------------------------

    async def _read(self, what: str, op: Op[T], *, snapshot: bool = False) -> T:
        """Run a read. ``snapshot``: ``op`` has several statements that must agree."""
        if not self._open:
            raise StorageError(f"{what}: the store is not open")
        if self._memory:
            return await self._write(what, op)
        started = time.perf_counter()
        try:
            if not snapshot:
                assert self._reader is not None
                return await op(self._reader)
            async with self._snapshot_lock:
                db = self._snapshot
                assert db is not None
                await db.execute("BEGIN")
                try:
                    return await op(db)
                finally:
                    if db.in_transaction:
                        await db.execute("ROLLBACK")
        except Exception as exc:
            raise translate(what, exc) from None
        finally:
            if self._latency is not None:
                self._latency(what, time.perf_counter() - started)


def translate(what: str, exc: Exception) -> Exception:
    """sqlite3 errors become StorageError naming the operation; our own errors pass."""
    if isinstance(exc, sqlite3.Error):
        return StorageError(f"{what}: {type(exc).__name__}: {exc}")
    return exc
