"""Core overhead: messages/s through Dispatcher + ChatService + SQLite, with no model.

    python bench/core_overhead.py [--messages 2000] [--users 50]

A scripted generator answers instantly, so what is measured is the framework:
middlewares, prompt building, streaming bookkeeping and persistence. In the same
run, the bare aiosqlite inserts of the same rows (user turn + reply, one commit
each) give the floor; the ratio says what the framework costs on top of storage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiosqlite  # noqa: E402

from bots.app_factory import bot_app  # noqa: E402
from core.events import ChatKind, ConversationKey, IncomingMessage, UserRef  # noqa: E402
from core.generation.scripted import ScriptedGenerator  # noqa: E402
from core.settings import BotSettings  # noqa: E402
from core.storage.sqlite import SQLiteStore  # noqa: E402
from bench_support import NullOutbox, percentile  # noqa: E402


async def through_core(db: Path, messages: int, users: int) -> tuple[float, list[float]]:
    settings = BotSettings.model_validate(
        {"name": "bench", "limits": {"user_messages_per_minute": 1e9, "user_burst": 10**9,
                                     "chat_messages_per_minute": 1e9, "chat_burst": 10**9}}
    )
    generator = ScriptedGenerator(["Sure, here is a short scripted answer for the benchmark."])
    outbox = NullOutbox()
    latencies: list[float] = []
    async with bot_app(settings, store=SQLiteStore(db), generator=generator, features=[]) as app:

        async def user_loop(user: int) -> None:
            for index in range(messages // users):
                event = IncomingMessage(
                    event_id=f"bench:{user}:{index}",
                    key=ConversationKey("bench", str(user)),
                    user=UserRef("bench", str(user)),
                    text=f"message {index} from user {user}: how are you today?",
                    chat_kind=ChatKind.PRIVATE,
                )
                started = time.perf_counter()
                await app.dispatcher.feed(event, outbox)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(user_loop(user) for user in range(users)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


async def bare_inserts(db: Path, messages: int) -> float:
    async with aiosqlite.connect(db) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, conv INTEGER, role TEXT, text TEXT, at REAL)")
        started = time.perf_counter()
        for index in range(messages):
            await conn.execute("INSERT INTO m (conv, role, text, at) VALUES (?, 'user', ?, ?)",
                               (index % 50, f"message {index}: how are you today?", time.time()))
            await conn.commit()
            await conn.execute("INSERT INTO m (conv, role, text, at) VALUES (?, 'assistant', ?, ?)",
                               (index % 50, "Sure, here is a short scripted answer.", time.time()))
            await conn.commit()
        return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        elapsed, latencies = await through_core(Path(folder) / "core.db", args.messages, args.users)
        bare = await bare_inserts(Path(folder) / "bare.db", len(latencies))
    count = len(latencies)
    print(f"messages: {count} from {args.users} concurrent users")
    print(f"core:  {count / elapsed:8.0f} messages/s   p50 {percentile(latencies, .5) * 1e3:6.2f} ms"
          f"   p99 {percentile(latencies, .99) * 1e3:6.2f} ms (per message, under concurrency)")
    print(f"bare aiosqlite inserts of the same rows: {count / bare:8.0f} messages/s")
    print(f"ratio core/bare throughput: {(count / elapsed) / (count / bare):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
