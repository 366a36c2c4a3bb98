"""Plugin figures: routing overhead, scheduler throughput, knowledge retrieval quality.

    python bench/plugins.py [--messages 1000] [--jobs 1000] [--no-embedder]

1. Chat messages through the Dispatcher with no plugin, then with the four example
   plugins plus a plugin of 20 keyword handlers and a middleware (a message that no
   handler takes passes every trigger, then the model): per-message p50/p99.
2. Scheduler: run N due one-off jobs that each post a message (SQLite on a temp file).
3. knowledge: the shipped support articles (bots/support_kb) embedded with the real
   default embedder (all-MiniLM-L6-v2, offline); hit@1 and hit@3 of the cited article
   for hand-written questions in English and Chinese, and the retrieval latency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bots.app_factory import bot_app  # noqa: E402
from core.events import ChatKind, ConversationKey, IncomingMessage, UserRef  # noqa: E402
from core.generation.scripted import ScriptedGenerator  # noqa: E402
from core.plugins import setup_plugins  # noqa: E402
from core.settings import BotSettings  # noqa: E402
from core.storage.sqlite import SQLiteStore  # noqa: E402
from bench_support import NullOutbox, percentile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = {"user_messages_per_minute": 1e9, "user_burst": 10**9, "chat_messages_per_minute": 1e9, "chat_burst": 10**9}

BUSY = '''
from core.plugins import Plugin, keyword
plugin = Plugin("busy")
for n in range(20):
    @plugin.on_message(keyword(f"word{n}", f"词{n}"), name=f"h{n}")
    async def handler(turn):
        return "taken"

@plugin.middleware
async def count(turn, call_next):
    await call_next()
'''

QUESTIONS = [  # (question, the article heading that answers it)
    ("How long does standard delivery take?", "shipping.md › Shipping times"),
    ("When will my order ship?", "shipping.md › Shipping times"),
    ("Do you deliver to Japan?", "shipping.md › International shipping"),
    ("Who pays customs fees?", "shipping.md › International shipping"),
    ("Can I get my money back?", "refunds.md › Refunds"),
    ("How many days do I have to return something for a refund?", "refunds.md › Refunds"),
    ("My package arrived broken, what now?", "refunds.md › Damaged items"),
    ("I forgot my password", "account.md › Reset your password"),
    ("How long is the reset link valid?", "account.md › Reset your password"),
    ("How do I close my account?", "account.md › Delete your account"),
    ("怎么申请退款？", "常见问题.md › 退款"),
    ("快递几天能到？", "常见问题.md › 发货时间"),
]


def event(n: int) -> IncomingMessage:
    user = f"u{n % 50}"
    return IncomingMessage(f"bench:{n}", ConversationKey("bench", user), UserRef("bench", user),
                           f"tell me something nice, message {n}", ChatKind.PRIVATE)


async def chat_latencies(folder: Path, plugins: dict, messages: int) -> list[float]:
    settings = BotSettings.model_validate({"name": "bench", "limits": FAST, "model": {"backend": "scripted"},
                                           "plugins": plugins})
    settings = settings.model_copy(update={"source": folder / "bot.toml"})
    timings = []
    async with bot_app(settings, store=SQLiteStore(folder / f"chat{len(plugins)}.db"),
                   generator=ScriptedGenerator(["A short reply."]), features=[setup_plugins]) as app:
        outbox = NullOutbox()
        for n in range(messages):
            start = time.perf_counter()
            await app.dispatcher.feed(event(n), outbox)
            timings.append(time.perf_counter() - start)
    return timings[messages // 10 :]  # warm-up dropped


async def scheduler_run(folder: Path, jobs: int) -> tuple[float, int]:
    (folder / "busy.py").write_text(textwrap.dedent(BUSY) + textwrap.dedent('''
        @plugin.job("ping")
        async def ping(ctx, job):
            await ctx.send(job.key, "ping")
    '''), encoding="utf-8")
    settings = BotSettings.model_validate({"name": "bench", "model": {"backend": "scripted"},
                                           "plugins": {"enabled": ["busy"], "paths": {"busy": "busy.py"}}})
    settings = settings.model_copy(update={"source": folder / "bot.toml"})
    async with bot_app(settings, store=SQLiteStore(folder / "jobs.db"), generator=ScriptedGenerator(["x"]),
                   features=[setup_plugins]) as app:
        outbox = NullOutbox()
        app.seams.outboxes.register("bench", outbox)
        ctx = app.services.plugins.loaded["busy"].ctx
        at = 2_000_000_000.0
        for n in range(jobs):
            await ctx.schedule("ping", at=at, key=ConversationKey("bench", f"c{n}"))
        start = time.perf_counter()
        ran = await app.services.plugins.scheduler.run_due(at + 1)
        return time.perf_counter() - start, ran if outbox.sent == ran else -1


async def knowledge_quality(folder: Path) -> tuple[float, float, float, int]:
    settings = BotSettings.model_validate({
        "name": "bench", "model": {"backend": "scripted"},
        "plugins": {"enabled": ["knowledge"], "knowledge": {"folder": str(ROOT / "bots" / "support_kb")}},
    }).model_copy(update={"source": folder / "bot.toml"})
    from plugins.knowledge import search

    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["x"]),
                   features=[setup_plugins]) as app:
        ctx = app.services.plugins.loaded["knowledge"].ctx
        hits1 = hits3 = 0
        timings = []
        for question, expected in QUESTIONS:
            start = time.perf_counter()
            found = await search(ctx, question, 3, -1.0)
            timings.append(time.perf_counter() - start)
            citations = [passage.citation for _, passage in found]
            hits1 += citations[:1] == [expected]
            hits3 += expected in citations
        passages = len(ctx.state["index"].passages)
    n = len(QUESTIONS)
    return hits1 / n, hits3 / n, statistics.median(timings), passages


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "busy.py").write_text(textwrap.dedent(BUSY), encoding="utf-8")
        bare = await chat_latencies(folder, {}, args.messages)
        loaded = await chat_latencies(
            folder,
            {"enabled": ["busy", "reminders", "daily"], "paths": {"busy": "busy.py"}},
            args.messages,
        )
        print(f"chat message, no plugins:   p50 {percentile(bare, .5) * 1e3:.2f} ms  p99 {percentile(bare, .99) * 1e3:.2f} ms")
        print(f"chat message, plugins busy (20 keyword handlers + middleware), reminders, daily:"
              f" p50 {percentile(loaded, .5) * 1e3:.2f} ms  p99 {percentile(loaded, .99) * 1e3:.2f} ms"
              f"  (+{(statistics.median(loaded) - statistics.median(bare)) * 1e3:.2f} ms)")
        seconds, ran = await scheduler_run(folder, args.jobs)
        print(f"scheduler: {ran} due jobs run and delivered in {seconds:.2f} s ({ran / seconds:.0f} jobs/s)")
        if args.embedder:
            hit1, hit3, latency, passages = await knowledge_quality(folder)
            print(f"knowledge (all-MiniLM-L6-v2, {passages} passages, {len(QUESTIONS)} questions EN+ZH):"
                  f" hit@1 {hit1:.2f}  hit@3 {hit3:.2f}  retrieval p50 {latency * 1e3:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--no-embedder", dest="embedder", action="store_false", help="skip the knowledge figures")
    asyncio.run(main(parser.parse_args()))
