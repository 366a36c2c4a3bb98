"""The default Store: SQLite through aiosqlite.

Concurrency. Every write goes through one connection driven by one task: it drains a
queue of operations and runs all it finds in one transaction (group commit), each
operation inside a savepoint when it has several statements, so one failing operation
never undoes its neighbours. Each caller awaits its own result. Single-statement reads
use a second connection; reads of several statements use a third one inside a read
transaction, so they see one consistent snapshot. In WAL mode readers never wait for
the writer, and with one writer nothing ever waits for a lock (busy_timeout only
covers other processes, e.g. an operator's sqlite3 shell). ``":memory:"`` runs
everything on one connection through the writer queue.

Durability. ``synchronous=NORMAL`` is safe with WAL: a commit appends checksummed frames
to the WAL and the fsync happens at checkpoints. A crashed or killed process loses
nothing (the pages are in the OS cache); a power cut may lose the last few commits but
never corrupts the file or splits a transaction.

Text. SQLite stores UTF-8, which cannot hold a lone UTF-16 surrogate (``"\\ud800"``,
produced by some clients and by slicing UTF-16 text). Such code points are replaced
by U+FFFD, and a surrogate pair written as two code points is joined into its
character. Nothing else is changed: no case folding, no NFC.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import numpy as np

from core.errors import InputRejected, NotFound, PersonabotError, StorageError
from core.events import ConversationKey
from core.records import AuditEntry, Conversation, Memory, Profile, StoredMessage, UserRecord
from core.storage.migrations import migrate
from core.storage.plugin_data import PluginDataMixin, forget_plugin_rows, plugin_rows_of

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[aiosqlite.Connection], Awaitable[T]]

BUSY_TIMEOUT_MS = 5000
MAX_BATCH = 512  # operations per group commit
RETENTION_CHUNK = 2000  # old messages deleted per transaction
MEMORY_SCOPES = ("private", "group")
AUDIT_OUTCOMES = ("ok", "denied", "error")
FORGOTTEN = "[forgotten]"

_USER_COLS = "id, display_name, first_seen, last_seen, message_count, banned"
_CONV_COLS = "id, key, persona, started_at, active"
_MSG_COLS = "id, conversation_id, role, user_id, text, created_at, event_id, answered"
_MEM_COLS = "id, user_id, subject, text, embedding, scope, created_at, superseded_by"
_AUDIT_COLS = "id, at, actor, action, target, outcome, detail"


# -- values -------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """Replace lone surrogates with U+FFFD (and join split pairs) so UTF-8 can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InputRejected(f"{what} must be a string, not {type(value).__name__}")
    return clean_text(value)


def _json(value: object) -> str:
    return clean_text(json.dumps(value, ensure_ascii=False, default=str))


def _vector(values: Sequence[float] | None, what: str) -> bytes | None:
    if values is None:
        return None
    try:
        array = np.asarray(values, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise InputRejected(f"{what} must be a sequence of numbers: {exc}") from None
    if array.ndim != 1 or not np.isfinite(array).all():
        raise InputRejected(f"{what} must be a flat vector of finite numbers")
    return array.tobytes()


def _unvector(blob: bytes | None) -> tuple[float, ...] | None:
    return None if blob is None else tuple(np.frombuffer(blob, dtype="<f4").tolist())


def _id_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=256)
def _id_pattern(user_id: str) -> re.Pattern[str]:
    # "telegram:12" must match in "chat:telegram:12" and "telegram:12/7", not in "telegram:123".
    return re.compile(rf"(?<![\w-]){re.escape(user_id)}(?!\w)")


def _mentions(text: object, user_id: str) -> bool:
    """SQL function pb_mentions(text, id): ``text`` names ``id`` as a whole identifier."""
    return isinstance(text, str) and bool(user_id) and _id_pattern(user_id).search(text) is not None


def _redact(text: object, user_id: str) -> object:
    """SQL function pb_redact(text, id): ``text`` with every mention of ``id`` replaced."""
    return _id_pattern(user_id).sub(FORGOTTEN, text) if isinstance(text, str) and user_id else text


def _in_json(user_id: str) -> str:
    """How ``user_id`` appears inside a JSON string (quotes and backslashes escaped)."""
    return json.dumps(user_id, ensure_ascii=False)[1:-1]


def _user(row: tuple) -> UserRecord:
    return UserRecord(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


def _conversation(row: tuple) -> Conversation:
    return Conversation(row[0], row[1], row[2], row[3], bool(row[4]))


def _message(row: tuple) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))


def _memory(row: tuple) -> Memory:
    return Memory(row[0], row[1], row[2], row[3], _unvector(row[4]), row[5], row[6], row[7])


def _audit(row: tuple) -> AuditEntry:
    return AuditEntry(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))


def _profile(user_id: str, row: tuple | None) -> Profile:
    if row is None:
        return Profile(user_id)
    return Profile(user_id, json.loads(row[0]), json.loads(row[1]), _unvector(row[2]), row[3], row[4])


async def _one(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> tuple | None:
    rows = await db.execute_fetchall(sql, params)
    return rows[0] if rows else None


async def _all(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    return list(await db.execute_fetchall(sql, params))


async def _changes(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Rows changed by one INSERT/UPDATE/DELETE (sqlite3 reports -1 for a statement
    starting with WITH, hence the check)."""
    cursor = await db.execute(sql, params)
    count = cursor.rowcount
    await cursor.close()
    if count < 0:
        raise StorageError(f"no row count for: {sql.split()[0]}")
    return count


class SQLiteStore(PluginDataMixin):
    """``async with SQLiteStore("bot.db") as store: ...`` — see the module docstring."""

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
        self.write_batches = 0  # transactions committed by the writer (bench: ops per commit)
        self.write_ops = 0

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> SQLiteStore:
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

    async def _connect(self, *, writer: bool) -> aiosqlite.Connection:
        db = await aiosqlite.connect(str(self.path), isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA foreign_keys = ON")
            if writer and not self._memory:
                (mode,) = await _one(db, "PRAGMA journal_mode = WAL") or ("?",)
                if mode != "wal":
                    log.warning("%s: journal mode %s instead of WAL; readers will wait for writers", self.path, mode)
            await db.execute("PRAGMA synchronous = NORMAL")
            if not writer:
                await db.execute("PRAGMA query_only = ON")
            await db.create_function("pb_mentions", 2, _mentions, deterministic=True)
            await db.create_function("pb_redact", 2, _redact, deterministic=True)
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
        self._queue.put_nowait((what, op, atomic, future))
        return await future

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
        try:
            await db.execute("BEGIN IMMEDIATE")
            for what, op, atomic, _ in batch:
                outcome = await self._run(db, what, op, atomic)
                if not db.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error):
                    # nothing of this batch was kept.
                    raise StorageError(f"{what}: transaction aborted: {outcome[1]}")
                outcomes.append(outcome)
            await db.execute("COMMIT")
        except Exception as exc:
            with suppress(sqlite3.Error):
                if db.in_transaction:
                    await db.execute("ROLLBACK")
            error = exc if isinstance(exc, PersonabotError) else StorageError(f"commit failed: {exc}")
            outcomes = [(None, error)] * len(batch)
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
            return None, _translate(what, exc)

    # -- readers ---------------------------------------------------------------------

    async def _read(self, what: str, op: Op[T], *, snapshot: bool = False) -> T:
        """Run a read. ``snapshot``: ``op`` has several statements that must agree."""
        if not self._open:
            raise StorageError(f"{what}: the store is not open")
        if self._memory:
            return await self._write(what, op)
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
            raise _translate(what, exc) from None

    # -- users -----------------------------------------------------------------------

    async def touch_user(self, user_id: str, display_name: str = "") -> UserRecord:
        uid, name = _text(user_id, "user id"), _text(display_name, "display name")
        params = (uid, name, self._clock(), _id_hash(uid))

        async def op(db: aiosqlite.Connection) -> UserRecord:
            row = await _one(
                db,
                f"""INSERT INTO users (id, display_name, first_seen, last_seen, message_count, banned)
                    VALUES (?1, ?2, ?3, ?3, 1, EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = ?4))
                    ON CONFLICT (id) DO UPDATE SET
                        last_seen = excluded.last_seen,
                        message_count = message_count + 1,
                        display_name = iif(excluded.display_name <> '', excluded.display_name, display_name)
                    RETURNING {_USER_COLS}""",
                params,
            )
            assert row is not None
            return _user(row)

        return await self._write("touch_user", op)

    async def get_user(self, user_id: str) -> UserRecord | None:
        uid = _text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> UserRecord | None:
            row = await _one(db, f"SELECT {_USER_COLS} FROM users WHERE id = ?", (uid,))
            return _user(row) if row else None

        return await self._read("get_user", op)

    async def set_banned(self, user_id: str, banned: bool) -> None:
        """Also works for a user never seen (an admin may ban an id in advance)."""
        uid, now = _text(user_id, "user id"), self._clock()

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                """INSERT INTO users (id, first_seen, last_seen, message_count, banned) VALUES (?, ?, ?, 0, ?)
                   ON CONFLICT (id) DO UPDATE SET banned = excluded.banned""",
                (uid, now, now, int(bool(banned))),
            )
            if not banned:
                await db.execute("DELETE FROM forgotten_bans WHERE id_hash = ?", (_id_hash(uid),))

        await self._write("set_banned", op, atomic=True)

    async def is_banned(self, user_id: str) -> bool:
        uid = _text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> bool:
            row = await _one(
                db,
                """SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND banned)
                       OR EXISTS (SELECT 1 FROM forgotten_bans WHERE id_hash = ?)""",
                (uid, _id_hash(uid)),
            )
            return bool(row and row[0])

        return await self._read("is_banned", op)

    # -- profiles --------------------------------------------------------------------

    async def get_profile(self, user_id: str) -> Profile:
        """The stored profile, or an empty one (nothing is created)."""
        uid = _text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> Profile:
            row = await _one(
                db,
                "SELECT preferences, consent, interest, interest_count, updated_at FROM profiles WHERE user_id = ?",
                (uid,),
            )
            return _profile(uid, row)

        return await self._read("get_profile", op)

    async def save_profile(self, profile: Profile) -> None:
        """Replace the user's profile; ``updated_at`` becomes the time of saving."""
        uid = _text(profile.qualified_id, "user id")
        preferences = {_text(k, "preference name"): _text(v, f"preference {k!r}") for k, v in profile.preferences.items()}
        for flag, value in profile.consent.items():
            if not isinstance(value, bool):
                raise InputRejected(f"consent flag {flag!r} must be true or false")
        params = (uid, _json(preferences), _json(profile.consent), _vector(profile.interest, "interest vector"),
                  int(profile.interest_count), self._clock())

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                """INSERT OR REPLACE INTO profiles (user_id, preferences, consent, interest, interest_count, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                params,
            )

        await self._write("save_profile", op)

    # -- settings --------------------------------------------------------------------

    async def get_setting(self, scope: str, name: str) -> str | None:
        params = (_text(scope, "setting scope"), _text(name, "setting name"))

        async def op(db: aiosqlite.Connection) -> str | None:
            row = await _one(db, "SELECT value FROM settings WHERE scope = ? AND name = ?", params)
            return row[0] if row else None

        return await self._read("get_setting", op)

    async def set_setting(self, scope: str, name: str, value: str | None) -> None:
        key = (_text(scope, "setting scope"), _text(name, "setting name"))
        stored = None if value is None else _text(value, "setting value")
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> None:
            if stored is None:
                await db.execute("DELETE FROM settings WHERE scope = ? AND name = ?", key)
            else:
                await db.execute(
                    "INSERT OR REPLACE INTO settings (scope, name, value, updated_at) VALUES (?, ?, ?, ?)",
                    (*key, stored, now),
                )

        await self._write("set_setting", op)

    # -- personas --------------------------------------------------------------------

    async def upsert_persona(self, name: str, definition: dict[str, Any]) -> None:
        persona = _text(name, "persona name")
        try:
            body = clean_text(json.dumps(definition, ensure_ascii=False))
        except (TypeError, ValueError) as exc:
            raise InputRejected(f"persona {persona!r}: definition is not JSON data: {exc}") from None
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT OR REPLACE INTO personas (name, definition, updated_at) VALUES (?, ?, ?)", (persona, body, now)
            )

        await self._write("upsert_persona", op)

    async def get_persona(self, name: str) -> dict[str, Any] | None:
        persona = _text(name, "persona name")

        async def op(db: aiosqlite.Connection) -> dict[str, Any] | None:
            row = await _one(db, "SELECT definition FROM personas WHERE name = ?", (persona,))
            return json.loads(row[0]) if row else None

        return await self._read("get_persona", op)

    async def list_personas(self) -> list[str]:
        async def op(db: aiosqlite.Connection) -> list[str]:
            return [row[0] for row in await _all(db, "SELECT name FROM personas ORDER BY name")]

        return await self._read("list_personas", op)

    # -- conversations and messages --------------------------------------------------

    async def active_conversation(self, key: ConversationKey) -> Conversation:
        qualified = _conversation_key(key)

        async def find(db: aiosqlite.Connection) -> Conversation | None:
            row = await _one(db, f"SELECT {_CONV_COLS} FROM conversations WHERE key = ? AND active = 1", (qualified,))
            return _conversation(row) if row else None

        found = await self._read("active_conversation", find)
        if found is not None:
            return found
        now = self._clock()

        async def create(db: aiosqlite.Connection) -> Conversation:
            # Another caller may have created it meanwhile: the no-op update returns that one.
            row = await _one(
                db,
                f"""INSERT INTO conversations (platform, key, started_at, active) VALUES (?, ?, ?, 1)
                    ON CONFLICT (key) WHERE active = 1 DO UPDATE SET key = excluded.key
                    RETURNING {_CONV_COLS}""",
                (_text(key.platform, "platform"), qualified, now),
            )
            assert row is not None
            return _conversation(row)

        return await self._write("active_conversation", create)

    async def reset_conversation(self, key: ConversationKey) -> Conversation:
        """Close the open conversation and start an empty one with the same persona."""
        qualified, now = _conversation_key(key), self._clock()

        async def op(db: aiosqlite.Connection) -> Conversation:
            old = await _one(
                db, "UPDATE conversations SET active = 0, closed_at = ? WHERE key = ? AND active = 1 RETURNING persona",
                (now, qualified),
            )
            row = await _one(
                db,
                f"""INSERT INTO conversations (platform, key, persona, started_at, active) VALUES (?, ?, ?, ?, 1)
                    RETURNING {_CONV_COLS}""",
                (_text(key.platform, "platform"), qualified, old[0] if old else None, now),
            )
            assert row is not None
            return _conversation(row)

        return await self._write("reset_conversation", op, atomic=True)

    async def set_conversation_persona(self, conversation_id: int, persona: str | None) -> None:
        name = None if persona is None else _text(persona, "persona name")

        async def op(db: aiosqlite.Connection) -> None:
            if not await _changes(db, "UPDATE conversations SET persona = ? WHERE id = ?", (name, int(conversation_id))):
                raise NotFound(f"conversation {conversation_id} does not exist")

        await self._write("set_conversation_persona", op)

    async def record_event(self, event_id: str) -> bool:
        params = (_text(event_id, "event id"), self._clock())

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(
                await _changes(db, "INSERT INTO processed_events (event_id, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING", params)
            )

        return await self._write("record_event", op)

    async def add_user_message(
        self, conversation_id: int, user_id: str, text: str, event_id: str | None = None
    ) -> StoredMessage:
        params = (
            int(conversation_id),
            _text(user_id, "user id"),
            _text(text, "message text"),
            self._clock(),
            None if event_id is None else _text(event_id, "event id"),
        )

        async def op(db: aiosqlite.Connection) -> StoredMessage:
            try:
                row = await _one(
                    db,
                    f"""INSERT INTO messages (conversation_id, role, user_id, text, created_at, event_id)
                        VALUES (?, 'user', ?, ?, ?, ?) RETURNING {_MSG_COLS}""",
                    params,
                )
            except sqlite3.IntegrityError:
                raise NotFound(f"conversation {conversation_id} does not exist") from None
            assert row is not None
            return _message(row)

        return await self._write("add_user_message", op)

    async def add_reply(self, user_message_id: int, text: str) -> StoredMessage:
        """One INSERT; the ``messages_mark_answered`` trigger marks the user turn in it."""
        params = (_text(text, "reply text"), self._clock(), int(user_message_id))

        async def op(db: aiosqlite.Connection) -> StoredMessage:
            row = await _one(
                db,
                f"""INSERT INTO messages (conversation_id, role, user_id, text, created_at, reply_to)
                    SELECT conversation_id, 'assistant', NULL, ?, ?, id FROM messages WHERE id = ? AND role = 'user'
                    RETURNING {_MSG_COLS}""",
                params,
            )
            if row is None:
                raise NotFound(f"user message {user_message_id} does not exist")
            return _message(row)

        return await self._write("add_reply", op)

    async def history(self, conversation_id: int, limit: int = 50) -> list[StoredMessage]:
        if limit <= 0:
            return []
        params = (int(conversation_id), int(limit))

        async def op(db: aiosqlite.Connection) -> list[StoredMessage]:
            rows = await _all(
                db, f"SELECT {_MSG_COLS} FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?", params
            )
            return [_message(row) for row in reversed(rows)]

        return await self._read("history", op)

    async def unanswered(self, platform: str, since: float = 0.0) -> list[tuple[StoredMessage, str]]:
        """Oldest first, from open and closed conversations alike."""
        params = (float(since), _text(platform, "platform"))

        async def op(db: aiosqlite.Connection) -> list[tuple[StoredMessage, str]]:
            rows = await _all(
                db,
                f"""SELECT {", ".join("m." + c for c in _MSG_COLS.split(", "))}, c.key
                    FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE m.role = 'user' AND m.answered = 0 AND m.created_at >= ? AND c.platform = ?
                    ORDER BY m.created_at, m.id""",  # the order of the partial index: no table scan
                params,
            )
            return [(_message(row), row[-1]) for row in rows]

        return await self._read("unanswered", op)

    async def turn_by_event(self, event_id: str) -> tuple[StoredMessage, StoredMessage | None] | None:
        """The user turn stored for a platform event and the bot's reply to it (None: never stored).

        Only asked when an event is delivered again (core.recovery), so no index is kept for it.
        """
        eid = _text(event_id, "event id")

        async def op(db: aiosqlite.Connection) -> tuple[StoredMessage, StoredMessage | None] | None:
            turn = await _one(
                db, f"SELECT {_MSG_COLS} FROM messages WHERE event_id = ? AND role = 'user' ORDER BY id LIMIT 1", (eid,)
            )
            if turn is None:
                return None
            reply = await _one(db, f"SELECT {_MSG_COLS} FROM messages WHERE reply_to = ? ORDER BY id LIMIT 1", (turn[0],))
            return _message(turn), None if reply is None else _message(reply)

        return await self._read("turn_by_event", op, snapshot=True)

    async def consented_conversations(self, flag: str = "training") -> list[list[StoredMessage]]:
        """Conversations with at least one user turn, ordered by id; a missing flag means no consent."""
        if not isinstance(flag, str) or not re.fullmatch(r"\w+", flag):
            raise InputRejected(f"consent flag must be a word, got {flag!r}")
        path = f'$."{flag}"'

        async def op(db: aiosqlite.Connection) -> list[list[StoredMessage]]:
            rows = await _all(
                db,
                f"""WITH authors AS (
                        SELECT DISTINCT conversation_id, user_id FROM messages WHERE role = 'user'),
                    ok AS (
                        SELECT a.conversation_id FROM authors a LEFT JOIN profiles p ON p.user_id = a.user_id
                        GROUP BY a.conversation_id
                        HAVING min(coalesce(json_extract(p.consent, ?) IS 1, 0)) = 1)
                    SELECT {", ".join("m." + c for c in _MSG_COLS.split(", "))}
                    FROM messages m JOIN ok ON ok.conversation_id = m.conversation_id
                    ORDER BY m.conversation_id, m.id""",
                (path,),
            )
            return [
                [_message(row) for row in group] for _, group in itertools.groupby(rows, key=lambda row: row[1])
            ]

        return await self._read("consented_conversations", op)

    async def delete_messages_before(self, timestamp: float) -> int:
        """Retention: delete older messages (a reply goes with its user turn), closed
        conversations left empty, and de-duplication ids seen before ``timestamp``.
        Returns the number of messages deleted.

        Runs as a series of transactions of at most RETENTION_CHUNK old messages, so a
        first run over a large history does not hold up the chats; each one is atomic
        (a crash midway leaves fewer old messages, never half a turn)."""
        cutoff = float(timestamp)

        async def chunk(db: aiosqlite.Connection) -> int:
            return await _changes(
                db,
                """DELETE FROM messages
                   WHERE id IN (SELECT id FROM messages WHERE created_at < ?1 ORDER BY created_at, id LIMIT ?2)
                   OR reply_to IN (SELECT id FROM messages WHERE created_at < ?1 ORDER BY created_at, id LIMIT ?2)""",
                (cutoff, RETENTION_CHUNK),
            )

        async def tidy(db: aiosqlite.Connection) -> None:
            await db.execute(
                """DELETE FROM conversations WHERE active = 0
                   AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = conversations.id)"""
            )
            await db.execute("DELETE FROM processed_events WHERE seen_at < ?", (cutoff,))

        total = 0
        while deleted := await self._write("delete_messages_before", chunk):
            total += deleted
        await self._write("delete_messages_before", tidy, atomic=True)
        return total

    # -- memories --------------------------------------------------------------------

    async def add_memory(
        self, user_id: str, subject: str, text: str, embedding: Sequence[float] | None, scope: str
    ) -> Memory:
        """``subject`` is stored case-folded with spaces collapsed; an empty subject
        never supersedes anything."""
        if scope not in MEMORY_SCOPES:
            raise InputRejected(f"memory scope must be one of {MEMORY_SCOPES}, got {scope!r}")
        uid = _text(user_id, "user id")
        topic = " ".join(_text(subject, "memory subject").split()).casefold()
        params = (uid, topic, _text(text, "memory text"), _vector(embedding, "memory embedding"), scope, self._clock())

        async def op(db: aiosqlite.Connection) -> Memory:
            row = await _one(
                db,
                f"""INSERT INTO memories (user_id, subject, text, embedding, scope, created_at)
                    VALUES (?, ?, ?, ?, ?, ?) RETURNING {_MEM_COLS}""",
                params,
            )
            assert row is not None
            if topic:
                await db.execute(
                    """UPDATE memories SET superseded_by = ?1
                       WHERE user_id = ?2 AND subject = ?3 AND superseded_by IS NULL AND id <> ?1""",
                    (row[0], uid, topic),
                )
            return _memory(row)

        return await self._write("add_memory", op, atomic=True)

    async def memories(self, user_id: str, include_superseded: bool = False) -> list[Memory]:
        """Oldest first."""
        uid = _text(user_id, "user id")
        live = "" if include_superseded else "AND superseded_by IS NULL"

        async def op(db: aiosqlite.Connection) -> list[Memory]:
            rows = await _all(db, f"SELECT {_MEM_COLS} FROM memories WHERE user_id = ? {live} ORDER BY id", (uid,))
            return [_memory(row) for row in rows]

        return await self._read("memories", op)

    async def delete_memory(self, user_id: str, memory_id: int) -> bool:
        """Only the owner's memory; the older versions it superseded go with it, so a
        deleted fact never resurfaces."""
        params = (int(memory_id), _text(user_id, "user id"))

        async def op(db: aiosqlite.Connection) -> bool:
            return bool(await _changes(db, "DELETE FROM memories WHERE id = ? AND user_id = ?", params))

        return await self._write("delete_memory", op)

    # -- audit -----------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", detail: dict[str, Any] | None = None
    ) -> None:
        """``detail`` values that are not JSON data are stored as their ``str()``."""
        if outcome not in AUDIT_OUTCOMES:
            raise InputRejected(f"audit outcome must be one of {AUDIT_OUTCOMES}, got {outcome!r}")
        params = (
            self._clock(),
            _text(actor, "audit actor"),
            _text(action, "audit action"),
            _text(target, "audit target"),
            outcome,
            _json(detail or {}),
        )

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)", params
            )

        await self._write("audit", op)

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """Newest first."""
        if limit <= 0:
            return []

        async def op(db: aiosqlite.Connection) -> list[AuditEntry]:
            rows = await _all(db, f"SELECT {_AUDIT_COLS} FROM audit_log ORDER BY id DESC LIMIT ?", (int(limit),))
            return [_audit(row) for row in rows]

        return await self._read("recent_audit", op)

    # -- identities across platforms -------------------------------------------------

    async def link_identities(self, a: str, b: str) -> list[str]:
        """Join the groups of ``a`` and ``b``; returns the merged group, sorted."""
        first, second, now = _text(a, "user id"), _text(b, "user id"), self._clock()

        async def op(db: aiosqlite.Connection) -> list[str]:
            groups = []
            for uid in (first, second):
                row = await _one(db, "SELECT group_id FROM identity_links WHERE user_id = ?", (uid,))
                groups.append(row[0] if row else None)
            if first != second:
                if groups[0] is None and groups[1] is None:
                    (next_group,) = await _one(db, "SELECT coalesce(max(group_id), 0) + 1 FROM identity_links") or (1,)
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
        uid = _text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> bool:
            return await _unlink(db, uid)

        return await self._write("unlink_identity", op, atomic=True)

    async def linked_identities(self, user_id: str) -> list[str]:
        """Every id linked with ``user_id``, itself included, sorted."""
        uid = _text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> list[str]:
            return await _linked(db, uid)

        return await self._read("linked_identities", op)

    # -- privacy and stats -----------------------------------------------------------

    async def export_user(self, user_id: str) -> dict[str, Any]:
        """JSON-ready: ``user``, ``profile`` (preferences, consent, interest), ``memories``
        (superseded ones too), ``messages`` (their turns, the bot's replies to them and
        every turn of conversations keyed by their id), ``settings`` whose scope or value
        names them, ``linked_identities`` and ``audit`` entries that name them."""
        uid = _text(user_id, "user id")

        async def op(db: aiosqlite.Connection) -> dict[str, Any]:
            user = await _one(db, f"SELECT {_USER_COLS} FROM users WHERE id = ?", (uid,))
            profile = _profile(
                uid,
                await _one(
                    db,
                    "SELECT preferences, consent, interest, interest_count, updated_at FROM profiles WHERE user_id = ?",
                    (uid,),
                ),
            )
            memories = await _all(db, f"SELECT {_MEM_COLS} FROM memories WHERE user_id = ? ORDER BY id", (uid,))
            messages = await _all(
                db,
                f"""SELECT m.id, c.key, m.role, m.user_id, m.text, m.created_at, m.reply_to
                    FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE m.id IN ({_USER_MESSAGE_IDS}) ORDER BY m.id""",
                {"uid": uid},
            )
            settings = await _all(
                db,
                """SELECT scope, name, value FROM settings
                   WHERE (instr(scope, :uid) AND pb_mentions(scope, :uid))
                      OR (instr(value, :uid) AND pb_mentions(value, :uid))
                   ORDER BY scope, name""",
                {"uid": uid},
            )
            audit = await _all(
                db,
                f"SELECT {_AUDIT_COLS} FROM audit_log WHERE {_AUDIT_NAMES_USER} ORDER BY id",
                {"uid": uid, "json_uid": _in_json(uid)},
            )
            return {
                "user_id": uid,
                "user": None if user is None else {
                    "display_name": user[1],
                    "first_seen": user[2],
                    "last_seen": user[3],
                    "message_count": user[4],
                    "banned": bool(user[5]),
                },
                "profile": {
                    "preferences": profile.preferences,
                    "consent": profile.consent,
                    "interest": None if profile.interest is None else list(profile.interest),
                    "interest_count": profile.interest_count,
                    "updated_at": profile.updated_at,
                },
                "memories": [
                    {
                        "id": m.id,
                        "subject": m.subject,
                        "text": m.text,
                        "scope": m.scope,
                        "created_at": m.created_at,
                        "superseded_by": m.superseded_by,
                        "embedding": None if m.embedding is None else list(m.embedding),
                    }
                    for m in map(_memory, memories)
                ],
                "messages": [
                    dict(zip(("id", "conversation", "role", "user_id", "text", "created_at", "reply_to"), row))
                    for row in messages
                ],
                "settings": [dict(zip(("scope", "name", "value"), row)) for row in settings],
                "linked_identities": await _linked(db, uid),
                "audit": [
                    {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
                     "outcome": e.outcome, "detail": e.detail}
                    for e in map(_audit, audit)
                ],
                **await plugin_rows_of(db, uid),
            }

        return await self._read("export_user", op, snapshot=True)

    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything :meth:`export_user` returns, in one transaction. Audit entries
        of other actors that name the user are kept with the id replaced by
        ``[forgotten]``. A banned user's ban survives as a SHA-256 of the id."""
        uid = _text(user_id, "user id")
        names = {"uid": uid, "json_uid": _in_json(uid)}
        now = self._clock()

        async def op(db: aiosqlite.Connection) -> dict[str, int]:
            counts: dict[str, int] = {}
            banned = await _one(db, "SELECT banned FROM users WHERE id = ?", (uid,))
            if banned and banned[0]:
                await db.execute(
                    "INSERT OR REPLACE INTO forgotten_bans (id_hash, at) VALUES (?, ?)", (_id_hash(uid), now)
                )
            counts["messages"] = await _changes(db, f"DELETE FROM messages WHERE id IN ({_USER_MESSAGE_IDS})", names)
            counts["conversations"] = await _changes(
                db, "DELETE FROM conversations WHERE instr(key, :uid) AND pb_mentions(key, :uid)", names
            )
            counts["memories"] = await _changes(db, "DELETE FROM memories WHERE user_id = :uid", names)
            counts["profiles"] = await _changes(db, "DELETE FROM profiles WHERE user_id = :uid", names)
            counts["users"] = await _changes(db, "DELETE FROM users WHERE id = :uid", names)
            counts["identity_links"] = int(await _unlink(db, uid))
            counts["settings"] = await _changes(
                db,
                """DELETE FROM settings WHERE (instr(scope, :uid) AND pb_mentions(scope, :uid))
                   OR (instr(value, :uid) AND pb_mentions(value, :uid))""",
                names,
            )
            counts["processed_events"] = await _changes(
                db, "DELETE FROM processed_events WHERE instr(event_id, :uid) AND pb_mentions(event_id, :uid)", names
            )
            counts["audit_log"] = await _changes(db, "DELETE FROM audit_log WHERE actor = :uid", names)
            counts["audit_redacted"] = await _changes(
                db,
                f"""UPDATE audit_log SET target = pb_redact(target, :uid), detail = pb_redact(detail, :json_uid)
                    WHERE {_AUDIT_NAMES_USER}""",
                names,
            )
            counts.update(await forget_plugin_rows(db, uid))
            return counts

        return await self._write("forget_user", op, atomic=True)

    async def stats(self) -> dict[str, int]:
        async def op(db: aiosqlite.Connection) -> dict[str, int]:
            queries = {
                "users": "SELECT count(*) FROM users",
                "banned_users": "SELECT count(*) FROM users WHERE banned",
                "conversations": "SELECT count(*) FROM conversations",
                "active_conversations": "SELECT count(*) FROM conversations WHERE active = 1",
                "messages": "SELECT count(*) FROM messages",
                "unanswered": "SELECT count(*) FROM messages WHERE role = 'user' AND answered = 0",
                "memories": "SELECT count(*) FROM memories WHERE superseded_by IS NULL",
                "personas": "SELECT count(*) FROM personas",
                "settings": "SELECT count(*) FROM settings",
                "audit_entries": "SELECT count(*) FROM audit_log",
                "processed_events": "SELECT count(*) FROM processed_events",
                "linked_identities": "SELECT count(*) FROM identity_links",
            }
            row = await _one(db, "SELECT " + ", ".join(f"({sql})" for sql in queries.values()))
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

_AUDIT_NAMES_USER = """(actor = :uid
    OR (instr(target, :uid) AND pb_mentions(target, :uid))
    OR (instr(detail, :json_uid) AND pb_mentions(detail, :json_uid)))"""


def _conversation_key(key: ConversationKey) -> str:
    if not isinstance(key, ConversationKey):
        raise InputRejected(f"expected a ConversationKey, not {type(key).__name__}")
    return _text(key.qualified, "conversation key")


async def _linked(db: aiosqlite.Connection, uid: str) -> list[str]:
    rows = await _all(
        db,
        """SELECT user_id FROM identity_links
           WHERE group_id = (SELECT group_id FROM identity_links WHERE user_id = ?) ORDER BY user_id""",
        (uid,),
    )
    return [row[0] for row in rows] or [uid]


async def _unlink(db: aiosqlite.Connection, uid: str) -> bool:
    row = await _one(db, "DELETE FROM identity_links WHERE user_id = ? RETURNING group_id", (uid,))
    if row is None:
        return False
    await db.execute(
        """DELETE FROM identity_links WHERE group_id = ?1
           AND (SELECT count(*) FROM identity_links WHERE group_id = ?1) < 2""",
        (row[0],),
    )
    return True


def _translate(what: str, exc: Exception) -> Exception:
    """sqlite3 errors become StorageError naming the operation; our own errors pass."""
    if isinstance(exc, sqlite3.Error):
        return StorageError(f"{what}: {type(exc).__name__}: {exc}")
    return exc
