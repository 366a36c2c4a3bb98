"""The PostgreSQL engine under :class:`~core.storage.postgres.PostgresStore`: the pool,
migrations at open, error translation, and the text codec.

Concurrency. Unlike SQLite there is no single writer: PostgreSQL serialises writers
row by row, so each Store method is one statement or one transaction on a pooled
connection, and several processes share one database safely. Read-modify-write
methods lock the rows they change (``FOR UPDATE``) or use one atomic upsert.

Opening. A wrong URL, a refused connection, a missing database or bad credentials
raise ConfigError naming ``where`` (the bot file's ``storage.url``) within the connect
timeout, before anything else starts; the password never appears in a message. Once
open, a database that goes away makes calls fail with StorageError (the user gets its
short message); the pool reconnects by itself when the server is back.

Text. PostgreSQL's ``text`` cannot hold NUL. The connection's text codec writes NUL as
``\\x01 0`` and a literal ``\\x01`` as ``\\x01 1`` and reads them back, so every Python
string round-trips exactly (other SQL clients see the escaped form).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from core.errors import ConfigError, PersonabotError, StorageError
from core.storage.postgres.schema import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
CONNECT_TIMEOUT_S = 5.0
ACQUIRE_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
_ESC = "\x01"


def _encode_text(value: str) -> str:
    if _ESC not in value and "\x00" not in value:
        return value
    return value.replace(_ESC, _ESC + "1").replace("\x00", _ESC + "0")


def _decode_text(value: str) -> str:
    if _ESC not in value:
        return value
    out, i = [], 0
    while i < len(value):
        char = value[i]
        if char == _ESC and i + 1 < len(value):
            out.append("\x00" if value[i + 1] == "0" else _ESC)
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))
    except ValueError:
        return "(unparsable URL)"


def check_url(url: str, where: str) -> str:
    """A postgresql:// URL, or ConfigError naming ``where``."""
    if not isinstance(url, str):
        raise ConfigError(f"{where}: expected a postgresql:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid URL: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname and "host=" not in parts.query:
        raise ConfigError(f"{where}: expected postgresql://user@host:5432/database, got {redacted(url)!r}")
    return url


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("text", schema="pg_catalog", encoder=_encode_text, decoder=_decode_text, format="text")


class PostgresEngine:
    """Lifecycle and query helpers; the queries live in the store classes built on it."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        where: str = "storage.url",
        clock: Callable[[], float] = time.time,
        max_connections: int = 10,
    ) -> None:
        self.url = check_url(url, where)
        self.where = where
        self._password = password
        self._clock = clock
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._latency: Callable[[str, float], None] | None = None

    def observe_latency(self, observer: Callable[[str, float], None] | None) -> None:
        """Call ``observer(operation, seconds)`` after every operation (core.http metrics)."""
        self._latency = observer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redacted(self.url)!r})"

    async def __aenter__(self) -> "PostgresEngine":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, apply pending migrations. ConfigError if the server cannot be used."""
        if self._pool is not None:
            return
        shown = redacted(self.url)
        try:
            pool = await asyncpg.create_pool(
                self.url,
                password=self._password,
                min_size=1,
                max_size=self._max_connections,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                init=_init_connection,
            )
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
            raise ConfigError(f"{self.where}: {shown}: the server refused the credentials: {exc}") from None
        except asyncpg.InvalidCatalogNameError as exc:
            raise ConfigError(f"{self.where}: {shown}: {exc}") from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            reason = f"no answer within {CONNECT_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else str(exc)
            raise ConfigError(f"{self.where}: cannot connect to {shown}: {reason or type(exc).__name__}") from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn, shown)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, (asyncpg.PostgresError, OSError)):
                raise StorageError(f"{shown}: migration failed, nothing was changed: {exc}") from None
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), COMMAND_TIMEOUT_S)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                pool.terminate()

    async def claim_bot_process(self) -> None:
        """Any number of bot processes may share one PostgreSQL database: nothing to claim."""

    async def ping(self) -> None:
        """One round trip; StorageError if the database cannot be reached (readiness checks)."""
        await self._run("ping", lambda conn: conn.fetchval("SELECT 1"))

    async def run_on_connection(
        self, what: str, op: Callable[[asyncpg.Connection], Awaitable[T]], *, tx: bool = False
    ) -> T:
        """For tools outside the Store port (``personabot storage migrate``): ``op`` on a
        pooled connection, in one transaction when ``tx``."""
        return await self._run(what, op, tx=tx)

    async def _run(
        self, what: str, op: Callable[[asyncpg.Connection], Awaitable[T]], *, tx: bool = False, snapshot: bool = False
    ) -> T:
        """Run ``op`` on a pooled connection: alone, in a transaction (``tx``), or in a
        read-only repeatable-read snapshot. Database errors become StorageError naming ``what``."""
        pool = self._pool
        if pool is None:
            raise StorageError(f"{what}: the store is not open")
        started = time.perf_counter()
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                if snapshot:
                    async with conn.transaction(isolation="repeatable_read", readonly=True):
                        return await op(conn)
                if tx:
                    async with conn.transaction():
                        return await op(conn)
                return await op(conn)
        except PersonabotError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StorageError(f"{what}: {type(exc).__name__}: {exc}") from None
        finally:
            if self._latency is not None:
                self._latency(what, time.perf_counter() - started)  # waiting for a pooled connection included
