"""Store benchmark: write throughput under concurrent chats, read latency on a big DB,
for SQLite and, in the same run, PostgreSQL.

    python bench/storage.py                      # SQLite: 100 chats, 1,000,000 stored messages
    python bench/storage.py --messages 200000    # quicker
    python bench/storage.py --store postgresql://bot@db:5432/bench   # SQLite, then that (empty) database
    python bench/storage.py --start-postgres     # SQLite, then a throwaway local server (fsync on)
    python bench/storage.py --start-postgres --pg-async-commit --skip-sqlite   # PostgreSQL at SQLite's durability

Prints:
  1. history writes/s: each of ``--chats`` concurrent chats stores a user turn and its
     reply (add_user_message + add_reply) ``--turns`` times; also the whole per-message
     path of ChatService (dedupe, touch_user, active_conversation, history, two writes);
     SQLITE_BUSY/locked errors seen; operations per group commit.
  2. history-window query latency (p50/p99, ``--window`` messages) on a database with
     ``--messages`` stored messages, idle and while the chats keep writing; plus the
     crash-recovery scan (unanswered) and a forget_user on that database.
The big database is built with executemany straight through sqlite3 (COPY for
PostgreSQL), not the API. With --store, give an empty database: it is emptied between the
tests and left filled.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.errors import StorageError  # noqa: E402
from core.events import ConversationKey  # noqa: E402
from core.ports import Store  # noqa: E402
from core.storage import SQLiteStore  # noqa: E402
from core.storage.postgres import PostgresStore  # noqa: E402
from bench_support import percentile  # noqa: E402

TEXTS = ["你好，今天怎么样？", "hello there, how are you doing today?", "مرحبا", "ok 👍", "明天见"]


class BusyCounter:
    def __init__(self) -> None:
        self.busy = 0
        self.other = 0

    def seen(self, error: StorageError) -> None:
        text = str(error).lower()
        if "locked" in text or "busy" in text:
            self.busy += 1
        else:
            self.other += 1


async def chat_pairs(store: Store, chat: int, turns: int, errors: BusyCounter) -> None:
    conversation = await store.active_conversation(ConversationKey("bench", str(chat)))
    for turn in range(turns):
        try:
            user = await store.add_user_message(conversation.id, f"bench:{chat}", TEXTS[turn % len(TEXTS)])
            await store.add_reply(user.id, TEXTS[(turn + 1) % len(TEXTS)])
        except StorageError as error:
            errors.seen(error)


async def chat_full_path(store: Store, chat: int, turns: int, window: int, errors: BusyCounter) -> None:
    key, user_id = ConversationKey("bench", f"full{chat}"), f"bench:full{chat}"
    for turn in range(turns):
        try:
            await store.record_event(f"bench:update:{chat}:{turn}")
            await store.is_banned(user_id)
            await store.touch_user(user_id, "用户")
            conversation = await store.active_conversation(key)
            user = await store.add_user_message(conversation.id, user_id, TEXTS[turn % len(TEXTS)])
            await store.history(conversation.id, limit=window)
            await store.add_reply(user.id, TEXTS[(turn + 1) % len(TEXTS)])
        except StorageError as error:
            errors.seen(error)


async def bench_writes(store: Store, chats: int, turns: int, window: int) -> None:
    async with store:
        errors = BusyCounter()
        start = time.perf_counter()
        await asyncio.gather(*(chat_pairs(store, chat, turns, errors) for chat in range(chats)))
        elapsed = time.perf_counter() - start
        pairs = chats * turns
        print(f"writes: {chats} concurrent chats x {turns} turns (user turn + reply)")
        print(f"  history writes/s (turn pairs): {pairs / elapsed:,.0f}   messages/s: {2 * pairs / elapsed:,.0f}")
        print(f"  busy/locked errors: {errors.busy}   other errors: {errors.other}")
        if isinstance(store, SQLiteStore):
            print(f"  operations per commit: {store.write_ops / store.write_batches:.1f}")

        errors = BusyCounter()
        start = time.perf_counter()
        await asyncio.gather(*(chat_full_path(store, chat, turns, window, errors) for chat in range(chats)))
        elapsed = time.perf_counter() - start
        print("  whole ChatService storage path per message (dedupe, ban check, touch_user,")
        print(f"  active_conversation, add_user_message, history({window}), add_reply): {pairs / elapsed:,.0f} messages/s")
        print(f"  busy/locked errors: {errors.busy}   other errors: {errors.other}")


def big_rows(messages: int, per_conversation: int) -> tuple[int, int, float, object]:
    """(conversations, users, start time, message rows) of the big database; the same for both backends."""
    conversations = max(1, messages // per_conversation)
    users = max(1, conversations // 2)
    rng = random.Random(7)
    now = time.time() - messages  # one message a second, ending now

    def rows():
        for pair in range(messages // 2):
            conversation = rng.randrange(conversations)
            user_id = f"big:{conversation % users}"
            at = now + 2 * pair
            text = TEXTS[pair % len(TEXTS)]
            yield (2 * pair + 1, conversation + 1, "user", user_id, text, at, None, None, False)
            yield (2 * pair + 2, conversation + 1, "assistant", None, text, at + 1, None, 2 * pair + 1, False)

    return conversations, users, now, rows()


async def build_big_postgres(url: str, messages: int, per_conversation: int) -> int:
    """Schema through the store, rows through COPY. Returns the conversation count."""
    import asyncpg

    async with PostgresStore(url):
        pass
    conversations, users, now, rows = big_rows(messages, per_conversation)
    conn = await asyncpg.connect(url)
    try:
        # The write test ran on this database first: start the big one from empty tables.
        await conn.execute("TRUNCATE users, conversations, messages, processed_events RESTART IDENTITY CASCADE")
        await conn.copy_records_to_table(
            "users", columns=["id", "display_name", "first_seen", "last_seen", "message_count"],
            records=((f"big:{u}", f"用户{u}", now, now, 0) for u in range(users)))
        await conn.copy_records_to_table(
            "conversations", columns=["id", "platform", "key", "started_at", "active"],
            records=((c + 1, "big", f"big:chat{c}", now, True) for c in range(conversations)))
        batch: list[tuple] = []
        columns = ["id", "conversation_id", "role", "user_id", "text", "created_at", "event_id", "reply_to", "answered"]
        for row in rows:
            batch.append(row)
            if len(batch) >= 100_000:
                await conn.copy_records_to_table("messages", columns=columns, records=batch)
                batch = []
        if batch:
            await conn.copy_records_to_table("messages", columns=columns, records=batch)
        for table in ("conversations", "messages"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return conversations


def build_big_db(path: Path, messages: int, per_conversation: int) -> int:
    """Schema through the store, rows through executemany. Returns the conversation count."""
    asyncio.run(_create_schema(path))
    conversations, users, now, rows = big_rows(messages, per_conversation)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    with db:
        db.executemany(
            "INSERT INTO users (id, display_name, first_seen, last_seen, message_count) VALUES (?, ?, ?, ?, ?)",
            ((f"big:{u}", f"用户{u}", now, now, 0) for u in range(users)),
        )
        db.executemany(
            "INSERT INTO conversations (id, platform, key, started_at, active) VALUES (?, 'big', ?, ?, 1)",
            ((c + 1, f"big:chat{c}", now) for c in range(conversations)),
        )
        db.executemany(
            """INSERT INTO messages (id, conversation_id, role, user_id, text, created_at, event_id, reply_to, answered)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            rows,
        )
    db.execute("ANALYZE")
    db.close()
    return conversations


async def _create_schema(path: Path) -> None:
    async with SQLiteStore(path):
        pass


async def bench_reads(store: Store, conversations: int, queries: int, window: int, chats: int) -> None:
    rng = random.Random(11)
    async with store:
        stats = await store.stats()
        print(f"reads: {stats['messages']:,} stored messages in {stats['conversations']:,} conversations")

        async def timed_queries() -> list[float]:
            samples = []
            for _ in range(queries):
                conversation_id = rng.randrange(conversations) + 1
                start = time.perf_counter()
                got = await store.history(conversation_id, limit=window)
                samples.append(time.perf_counter() - start)
                assert len(got) <= window
            return samples

        idle = await timed_queries()
        print(f"  history({window}) idle:          p50 {percentile(idle, 0.5) * 1e3:.2f} ms   "
              f"p99 {percentile(idle, 0.99) * 1e3:.2f} ms   ({queries} queries)")

        errors = BusyCounter()
        stop = asyncio.Event()

        async def writer(chat: int) -> None:
            while not stop.is_set():
                await chat_pairs(store, chat, 1, errors)

        writers = [asyncio.create_task(writer(chat)) for chat in range(chats)]
        busy = await timed_queries()
        stop.set()
        await asyncio.gather(*writers)
        print(f"  history({window}) with {chats} chats writing: p50 {percentile(busy, 0.5) * 1e3:.2f} ms   "
              f"p99 {percentile(busy, 0.99) * 1e3:.2f} ms   (busy errors: {errors.busy})")

        start = time.perf_counter()
        pending = await store.unanswered("bench")
        print(f"  unanswered() crash-recovery scan: {(time.perf_counter() - start) * 1e3:.1f} ms "
              f"({len(pending)} pending)")
        start = time.perf_counter()
        counts = await store.forget_user("big:3")
        print(f"  forget_user (a user with {counts['messages']} messages): {(time.perf_counter() - start) * 1e3:.0f} ms")


def run_sqlite(folder: Path, args: argparse.Namespace) -> None:
    print(f"== SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")
    asyncio.run(bench_writes(SQLiteStore(folder / "writes.db"), args.chats, args.turns, args.window))
    start = time.perf_counter()
    big = folder / "big.db"
    conversations = build_big_db(big, args.messages, args.per_conversation)
    size = big.stat().st_size / 2**20
    print(f"built {args.messages:,} messages with executemany in {time.perf_counter() - start:.1f} s ({size:.0f} MiB)")
    asyncio.run(bench_reads(SQLiteStore(big), conversations, args.queries, args.window, args.chats))


def run_postgres(url: str, args: argparse.Namespace) -> None:
    from core.storage.postgres.engine import redacted

    async def version() -> str:
        store = PostgresStore(url)
        async with store:
            return await store.run_on_connection("version", lambda c: c.fetchval("SHOW server_version"))

    pool = args.pg_pool
    print(f"== PostgreSQL {asyncio.run(version())} at {redacted(url)} (asyncpg, pool of {pool})")
    asyncio.run(bench_writes(PostgresStore(url, max_connections=pool), args.chats, args.turns, args.window))
    start = time.perf_counter()
    conversations = asyncio.run(build_big_postgres(url, args.messages, args.per_conversation))
    print(f"built {args.messages:,} messages with COPY in {time.perf_counter() - start:.1f} s")
    asyncio.run(bench_reads(PostgresStore(url, max_connections=pool), conversations, args.queries, args.window, args.chats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--turns", type=int, default=50, help="turn pairs per chat in the write test")
    parser.add_argument("--messages", type=int, default=1_000_000, help="stored messages for the read test")
    parser.add_argument("--per-conversation", type=int, default=100, help="average messages per conversation")
    parser.add_argument("--window", type=int, default=40, help="history window (the default limits.history_messages)")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp folder)")
    parser.add_argument("--store", default=None, help="also run on this empty PostgreSQL database (postgresql://…)")
    parser.add_argument("--start-postgres", action="store_true",
                        help="also run on a throwaway PostgreSQL started from the installed binaries (fsync on)")
    parser.add_argument("--pg-async-commit", action="store_true",
                        help="with --start-postgres: synchronous_commit=off, the durability of SQLite's WAL at "
                             "synchronous=NORMAL (a crash of the machine may lose the last commits, never corrupts)")
    parser.add_argument("--pg-pool", type=int, default=10, help="connections in the PostgreSQL store's pool")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        if not args.skip_sqlite:
            run_sqlite(Path(folder), args)
    if args.store:
        run_postgres(args.store, args)
    if args.start_postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres_server import PostgresServer

        options = {"synchronous_commit": "off"} if args.pg_async_commit else {}
        print(f"(throwaway server, fsync on, synchronous_commit {'off' if args.pg_async_commit else 'on'})")
        with PostgresServer(durable=True, options=options) as server:
            run_postgres(asyncio.run(server.create_database("bench")), args)


if __name__ == "__main__":
    main()
