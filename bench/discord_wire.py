"""Discord adapter through the wire: latency and HTTP calls per answer, no model.

    python bench/discord_wire.py [--messages 200] [--concurrent 50] [--words 60]

The real discord.py client runs against the REST + gateway fake on 127.0.0.1
(tests/adapters/discord_fake_server.py); a scripted generator streams ``--words``
words at once. Measured: the time from a MESSAGE_CREATE sent on the gateway to the
final text of the reply on the fake, one message at a time (p50/p95), the same for
``--concurrent`` mentions in as many channels at once, and the HTTP calls each
answer costs (send, edits, typing) with the default 1 s edit interval and with none.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.discord.bot import DiscordBot, run_bot  # noqa: E402
from bots.app_factory import bot_app  # noqa: E402
from core.generation.scripted import ScriptedGenerator  # noqa: E402
from core.settings import BotSettings  # noqa: E402
from core.storage.sqlite import SQLiteStore  # noqa: E402
from bench_support import percentile  # noqa: E402
from tests.adapters.discord_fake_server import FakeDiscord  # noqa: E402

USER = 700000000000000002


async def run(messages: int, concurrent: int, words: int, edit_interval: float, stream: bool) -> dict[str, float]:
    reply = " ".join(f"w{n}" for n in range(words))
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        channels = [fake.add_channel(guild) for _ in range(max(concurrent, 1))]
        os.environ["BENCH_DISCORD_TOKEN"] = fake.token
        settings = BotSettings.model_validate(
            {
                "name": "bench",
                "model": {"backend": "scripted", "generation": {"max_new_tokens": words + 1}},
                "limits": {"user_messages_per_minute": 1e9, "user_burst": 10**6, "chat_messages_per_minute": 1e9, "chat_burst": 10**6},
                "discord": {
                    "enabled": True,
                    "token_env": "BENCH_DISCORD_TOKEN",
                    "api_base_url": fake.base_url,
                    "edit_interval": edit_interval,
                    "stream": stream,
                },
            }
        )
        app_context = bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator([reply]), features=[])
        async with app_context as app:
            bot = DiscordBot(app, guild_ready_timeout=0.01)
            stop = asyncio.Event()
            task = asyncio.create_task(run_bot(bot, stop))
            await fake.wait_for(fake.identified.is_set)

            async def one(channel: int) -> float:
                before = len(fake.messages_in(channel))
                payload = fake.message(channel, USER, f"<@{fake.bot_id}> hi", mentions_bot=True)
                started = time.perf_counter()
                await fake.dispatch("MESSAGE_CREATE", payload)
                await fake.wait_for(lambda: len(fake.messages_in(channel)) > before and fake.messages_in(channel)[-1]["content"] == reply)
                return time.perf_counter() - started

            calls_before = len(fake.calls)
            sequential = [await one(channels[0]) for _ in range(messages)]
            calls_per_answer = (len(fake.calls) - calls_before) / messages
            started = time.perf_counter()
            burst = await asyncio.gather(*(one(channel) for channel in channels[:concurrent]))
            burst_wall = time.perf_counter() - started
            stop.set()
            await task
    return {
        "p50_ms": statistics.median(sequential) * 1000,
        "p95_ms": percentile(sequential, 0.95) * 1000,
        "calls_per_answer": calls_per_answer,
        "burst_p95_ms": percentile(list(burst), 0.95) * 1000,
        "burst_wall_s": burst_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--words", type=int, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"discord adapter through the wire: {args.messages} sequential answers, {args.concurrent} at once, {args.words}-word replies")
    for label, interval, stream in (("streamed, edit every 1 s", 1.0, True), ("streamed, no throttle", 1e-6, True), ("not streamed", 1.0, False)):
        figures = asyncio.run(run(args.messages, args.concurrent, args.words, interval, stream))
        print(
            f"  {label:26s} p50 {figures['p50_ms']:6.1f} ms  p95 {figures['p95_ms']:6.1f} ms"
            f"  HTTP calls/answer {figures['calls_per_answer']:5.1f}"
            f"  | {args.concurrent} at once: p95 {figures['burst_p95_ms']:7.1f} ms, all in {figures['burst_wall_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
