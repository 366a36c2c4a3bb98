"""PostgresStore: the Store contract on a real PostgreSQL server, plus what is its own.

The server is started from the installed binaries (tests/postgres_server.py); without
them the tests skip, except under CI=true where that is a failure.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from core.errors import ConfigError, StorageError
from core.events import ConversationKey
from core.ports import PluginStore, Store
from core.storage.postgres import PostgresStore
from core.storage.postgres.schema import MIGRATIONS, latest_version, migrate
from core.storage.sqlite.migrations import Migration
from tests.core.store_console_contract import *  # noqa: F403
from tests.core.store_contract import *  # noqa: F403
from tests.core.store_shared_contract import *  # noqa: F403
from tests.postgres_server import PASSWORD, SUPERUSER, pg_server, pg_url  # noqa: F401


@pytest.fixture
async def store(pg_url):
    async with PostgresStore(pg_url) as opened:
        yield opened


def test_it_implements_the_ports():
    store = PostgresStore("postgresql://bot@localhost/bot")
    assert isinstance(store, Store) and isinstance(store, PluginStore)


async def test_the_schema_has_the_sqlite_version_and_reopens(pg_url):
    async with PostgresStore(pg_url) as store:
        await store.touch_user("telegram:1", "Ann")
    async with PostgresStore(pg_url) as store:
        assert (await store.get_user("telegram:1")).display_name == "Ann"
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT version FROM personabot_schema") == latest_version()
    finally:
        await conn.close()
    from core.storage.sqlite.migrations import latest_version as sqlite_latest

    assert latest_version() == sqlite_latest() and [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_newer_schema_is_refused(pg_url):
    async with PostgresStore(pg_url):
        pass
    conn = await asyncpg.connect(pg_url)
    await conn.execute("UPDATE personabot_schema SET version = version + 1")
    await conn.close()
    with pytest.raises(StorageError, match="newer"):
        async with PostgresStore(pg_url):
            pass


async def test_another_programs_tables_are_not_touched(pg_url):
    conn = await asyncpg.connect(pg_url)
    await conn.execute("CREATE TABLE users (x int)")
    await conn.close()
    with pytest.raises(StorageError, match="refusing"):
        async with PostgresStore(pg_url):
            pass


async def test_two_processes_starting_together_migrate_once(pg_url):
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        for i, opened in enumerate(stores):
            assert await opened.record_event(f"e{i}")
        assert (await stores[0].stats())["processed_events"] == len(stores)
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_failed_migration_rolls_back_and_is_retried(pg_url):
    first = Migration(1, "one", ("CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('kept')"))
    broken = Migration(2, "broken", ("CREATE TABLE b (y TEXT)", "INSERT INTO nowhere VALUES (1)"))
    fixed = Migration(2, "fixed", ("CREATE TABLE b (y TEXT)",))
    conn = await asyncpg.connect(pg_url)
    try:
        assert await migrate(conn, "db", (first,)) == 1
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, "db", (first, broken))
        assert await conn.fetchval("SELECT to_regclass('b') IS NULL")
        assert await conn.fetchval("SELECT version FROM personabot_schema") == 1
        assert await migrate(conn, "db", (first, fixed)) == 2
        assert await conn.fetchval("SELECT x FROM a") == "kept"
    finally:
        await conn.close()


async def test_nul_and_the_escape_character_round_trip(store):
    conversation = await store.active_conversation(ConversationKey("telegram", "1"))
    for text in ("a\x00b", "\x01", "\x010", "\x00\x01\x00", "plain"):
        turn = await store.add_user_message(conversation.id, "telegram:1", text)
        assert turn.text == text
        assert (await store.history(conversation.id, limit=1))[0].text == text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://bot@localhost/bot", "expected postgresql://"),
        ("postgresql://bot@localhost:notaport/bot", "not a valid URL"),
    ],
)
def test_a_malformed_url_is_a_config_error_naming_the_field(url, message):
    with pytest.raises(ConfigError, match=f"bot.toml: storage.url: .*{message}"):
        PostgresStore(url, where="bot.toml: storage.url")


async def test_bad_credentials_refused_port_and_missing_database_fail_fast(pg_server):
    cases = [
        (f"postgresql://{SUPERUSER}:wrong@127.0.0.1:{pg_server.port}/postgres", "refused the credentials"),
        (f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:1/postgres", "cannot connect"),
        (f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{pg_server.port}/nosuchdb", "nosuchdb"),
    ]
    for url, message in cases:
        started = time.monotonic()
        with pytest.raises(ConfigError, match="storage.url") as raised:
            async with PostgresStore(url, where="bot.toml: storage.url"):
                pass
        assert message in str(raised.value) and "wrong" not in str(raised.value) and PASSWORD not in str(raised.value)
        assert time.monotonic() - started < 10  # the connect timeout, not a hang


async def test_the_password_may_come_from_the_environment_variable_named_in_the_file(pg_server):
    url = await pg_server.create_database()
    bare = url.replace(f":{PASSWORD}@", "@")
    async with PostgresStore(bare, password=PASSWORD) as store:
        await store.record_event("e")
    assert PASSWORD not in repr(PostgresStore(url))


async def test_a_closed_store_raises_storage_error(pg_url):
    store = PostgresStore(pg_url)
    with pytest.raises(StorageError, match="not open"):
        await store.get_user("telegram:1")


async def test_the_database_going_away_fails_calls_and_the_store_recovers_when_it_is_back():
    from tests.postgres_server import PostgresServer, require_binaries

    require_binaries()
    server = PostgresServer().start()
    try:
        async with PostgresStore(await server.create_database()) as store:
            await store.record_event("before")
            server.pause()
            with pytest.raises(StorageError) as raised:
                await store.record_event("while away")
            assert raised.value.user_message  # what the user is told: short, no details
            server.resume()
            outcomes = []
            for attempt in range(3):  # a pooled connection broken by the restart may fail once more
                try:
                    outcomes.append(await store.record_event(f"after {attempt}"))
                    break
                except StorageError:
                    outcomes.append(None)
            assert outcomes[-1] is True
            assert await store.record_event("before") is False  # the data survived
    finally:
        server.stop()
