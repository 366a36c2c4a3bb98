"""Several bot processes on one PostgreSQL, Telegram in webhook mode, through the wire.

    python bench/scale.py [--processes 2 4] [--messages 2000] [--chats 200] [--store postgresql://USER@HOST/DB]

For each process count: start that many `personabot run` workers (scripted model,
``[http]`` with the webhook on it, the Bot API fake of tests/adapters as Telegram; see
tests/adapters/webhook_workers.py). ``--chats`` users each send a message, wait for the
answer, send the next (a closed loop, as people chat), ``--messages`` in all, spread
round-robin over the workers; ``--redeliver`` of them (a share) go to a second worker
too, at once, as when Telegram retries a slow answer through the load balancer. Then
the answers per update are counted on the fake: 0 lost and 0 duplicated is the goal.
Latency is from posting an update to its answer reaching the fake; messages/s is
answered messages over the time from the first post to the last answer.

Without ``--store``, a throwaway PostgreSQL server is started from the installed
binaries (tests/postgres_server.py) with a new database per run; with it, the password
comes from $PGPASSWORD.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_support import percentile  # noqa: E402
from tests.adapters.telegram_fake_server import FakeBotAPI  # noqa: E402
from tests.adapters.webhook_workers import WebhookWorkers, answer_key  # noqa: E402
from tests.postgres_server import PASSWORD, PostgresServer  # noqa: E402


async def run(processes: int, url: str, password: str, messages: int, chats: int, redeliver: float) -> dict:
    fake = await FakeBotAPI().start()
    try:
        folder = Path(tempfile.mkdtemp(prefix="personabot-scale-"))
        async with WebhookWorkers(fake, folder, url, count=processes, password=password, name=f"scale{processes}") as workers:
            loop = asyncio.get_running_loop()
            every = round(1 / redeliver) if redeliver > 0 and processes > 1 else 0
            posted: dict[tuple[int, int], float] = {}
            answered: dict[tuple[int, int], asyncio.Event] = {}
            seen = 0

            def scan() -> bool:  # the fake calls it after every request: note new answers
                nonlocal seen
                for call in fake.calls[seen:]:
                    if call.method == "sendMessage" and call.status == 200:
                        answered.setdefault(answer_key(call), asyncio.Event()).set()
                seen = len(fake.calls)
                return False

            watcher = asyncio.create_task(fake.wait_for(scan, timeout=3600))
            counter = iter(range(messages))

            async def chat(chat_id: int) -> None:
                """One user: send, wait for the answer, send the next (closed loop)."""
                for n in counter:
                    update = fake.message_update(f"message {n}: 你好", chat_id=chat_id)
                    key = (chat_id, update["message"]["message_id"])
                    done = answered.setdefault(key, asyncio.Event())
                    posted[key] = loop.time()
                    workers_for = [n % processes] + ([(n + 1) % processes] if every and n % every == 0 else [])
                    statuses = await asyncio.gather(*(workers.post(worker, update) for worker in workers_for))
                    if set(statuses) != {200}:
                        logs = "\n".join(log[-2000:] for log in workers.stderr())
                        raise SystemExit(f"a worker answered the webhook with HTTP {statuses}; their logs:\n{logs}")
                    await asyncio.wait_for(done.wait(), 120)

            started = loop.time()
            try:
                await asyncio.gather(*(chat(1 + c) for c in range(chats)))
            except TimeoutError:
                pass  # counted as lost below
            watcher.cancel()
            codes = await workers.stop()  # drained: late duplicates, if any, have arrived
        if any(codes):
            raise SystemExit(f"workers exited with {codes}")
        answers: dict[tuple[int, int], list[float]] = {}
        for call in fake.calls_of("sendMessage"):
            answers.setdefault(answer_key(call), []).append(call.at)
        firsts = {key: min(times) for key, times in answers.items() if key in posted}
        latencies = [firsts[key] - at for key, at in posted.items() if key in firsts]
        last = max(firsts.values(), default=started)
        return {
            "processes": processes,
            "redelivered": len(range(0, messages, every)) if every else 0,
            "rate": len(firsts) / (last - started) if last > started else 0.0,
            "p50": 1000 * percentile(latencies, 0.5) if latencies else float("nan"),
            "p99": 1000 * percentile(latencies, 0.99) if latencies else float("nan"),
            "lost": len(posted) - len(firsts),
            "duplicated": sum(len(times) - 1 for key, times in answers.items() if key in posted),
        }
    finally:
        await fake.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="postgresql://USER@HOST:PORT/DB (default: a throwaway local server)")
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--redeliver", type=float, default=0.05, help="share of updates also posted to a second worker")
    args = parser.parse_args()
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the fake: workers drop keep-alives at exit
    server = None if args.store else PostgresServer().start()
    try:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.messages} messages from {args.chats} chats")
        print("| processes | redelivered | messages/s | p50 ms | p99 ms | lost | duplicated |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for processes in args.processes:
            if server is not None:
                url, password = (await server.create_database()).replace(f":{PASSWORD}@", "@"), PASSWORD
            else:
                url, password = args.store, os.environ.get("PGPASSWORD", "")
            row = await run(processes, url, password, args.messages, args.chats, args.redeliver)
            print(
                f"| {row['processes']} | {row['redelivered']} | {row['rate']:.0f} | {row['p50']:.0f}"
                f" | {row['p99']:.0f} | {row['lost']} | {row['duplicated']} |",
                flush=True,
            )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
