"""Telegram adapter through the wire: the real PTB Application against the Bot API fake.

    python bench/telegram_wire.py [--chats 120]

Each of ``--chats`` private chats sends one message; a scripted model answers at
once (one sendMessage per answer, ``private_streaming = "final"``). Two runs:

* ``unthrottled``: flood limits raised out of the way, so the figure is the adapter's
  own cost (PTB + conversion + dispatcher + SQLite + HTTP on 127.0.0.1);
* ``telegram limits``: the default limits (30 messages/s overall), so the figure shows
  the limiter holding the bot at Telegram's rate.

Latency is from the update being queued on the fake server to the answer arriving there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.generation.scripted import ScriptedGenerator  # noqa: E402
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI  # noqa: E402
from tests.adapters.telegram_support import TOKEN_ENV, bot_app, serving, telegram_settings  # noqa: E402


async def run(chats: int, limits: dict[str, float]) -> tuple[float, list[float]]:
    fake = await FakeBotAPI().start()
    try:
        settings = telegram_settings(fake, private_streaming="final", **limits)
        async with bot_app(settings, ScriptedGenerator(["Thanks, got it! 收到 👍"])) as app, serving(app, fake):
            queued: dict[int, float] = {}
            start = time.perf_counter()
            for chat in range(1, chats + 1):
                queued[chat] = time.perf_counter()
                fake.user_message(f"message {chat}", chat_id=chat)
            arrived: dict[int, float] = {}

            def done() -> bool:
                for call in fake.calls_of("sendMessage"):
                    arrived.setdefault(call.params["chat_id"], time.perf_counter())
                return len(arrived) == chats

            await fake.wait_for(done, timeout=600)
            elapsed = time.perf_counter() - start
    finally:
        await fake.close()
    return elapsed, [arrived[chat] - queued[chat] for chat in queued]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=120)
    args = parser.parse_args()
    os.environ[TOKEN_ENV] = TOKEN
    runs = {
        "unthrottled": {},
        "telegram limits": {
            "chat_messages_per_second": 1.0,
            "group_messages_per_minute": 20.0,
            "overall_messages_per_second": 30.0,
        },
    }
    print(f"{args.chats} private chats, one message each, python-telegram-bot against a local Bot API fake")
    for name, limits in runs.items():
        elapsed, latencies = await run(args.chats, limits)
        latencies.sort()
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"{name:>16}: {args.chats / elapsed:7.1f} answers/s   latency p50 {statistics.median(latencies) * 1000:7.1f} ms"
            f"   p95 {p95 * 1000:7.1f} ms   ({elapsed:.2f} s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
