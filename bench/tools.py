"""Tool-calling benchmark: the added latency of a one-tool turn, and the success rate of
30 scripted tool conversations, through the OpenAI-compatible fake (no model).

    python bench/tools.py                 # 200 turns of each kind
    python bench/tools.py --turns 50      # quicker

A turn is timed from ``Dispatcher.feed`` to its return (prompt, fake server round trips
over HTTP on 127.0.0.1, SQLite store, audit). A plain turn is one model request; a
one-tool turn is two (the call, then the answer) plus the tool run, its validation,
audit entry and stored trace. The 30 conversations are a fixed script (see CASES):
well-formed single and parallel calls, split deltas, Chinese arguments, mistakes the
model repairs, and models that never stop calling or name tools that do not exist.
Success: every tool the script expects ran with the expected arguments and the user got
the scripted answer; otherwise the bot's plain fallback reply is counted as a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_support import percentile  # noqa: E402

import adapters  # noqa: E402,F401  (platform sections)
from tests.conftest import make_event  # noqa: E402
from tests.fakes import RecordingOutbox  # noqa: E402
from tests.tools.helpers import text_reply, tool_bot, tool_reply  # noqa: E402

from core.tools.spec import ToolContext, make_tool  # noqa: E402

ran: list[tuple[str, dict]] = []


async def weather(ctx: ToolContext, city: str, days: int = 1) -> str:
    ran.append(("weather", {"city": city, "days": days}))
    return f"{city}: sunny for {days} day(s)"


async def convert(ctx: ToolContext, amount: float, currency: str) -> str:
    ran.append(("convert", {"amount": amount, "currency": currency}))
    return f"{amount * 1.1:.2f} {currency}"


TOOLS = (make_tool(weather, "weather", "Today's weather in a city"), make_tool(convert, "convert", "Convert money"))
W = lambda city, days=1: ("weather", {"city": city, "days": days})  # noqa: E731
C = lambda amount, currency: ("convert", {"amount": amount, "currency": currency})  # noqa: E731


def case(rounds, expected, answer="Done."):
    return {"rounds": rounds, "expected": expected, "answer": answer}


CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Perth", "北京", "上海", "東京", "Zürich", "São Paulo"]
CASES = (
    [case([[W(city)]], [W(city)]) for city in CITIES]  # 10 single calls
    + [case([[W(city, 3), C(10, "EUR")]], [W(city, 3), C(10, "EUR")]) for city in CITIES[:5]]  # 5 parallel
    + [case([[W(a)], [W(b)]], [W(a), W(b)]) for a, b in zip(CITIES[5:8], CITIES[:3])]  # 3 two-round
    + [case([[("weather", '{"city": "Rome"')], [W("Rome")]], [W("Rome")]) for _ in range(3)]  # 3 bad JSON, repaired
    + [case([[("wether", {"city": "Bern"})], [W("Bern")]], [W("Bern")]) for _ in range(3)]  # 3 unknown name, repaired
    + [case([[("weather", {"town": "Nice"})], [W("Nice")]], [W("Nice")]) for _ in range(2)]  # 2 schema error, repaired
    + [case([[W(f"x{i}")] for i in range(5)], [W("never")]) for _ in range(2)]  # 2 never stop calling
    + [case([[("teleport", {})]] * 4, [W("never")]) for _ in range(2)]  # 2 only unknown tools
)
assert len(CASES) == 30


def replies_for(script: dict):
    out = [tool_reply(*calls) for calls in script["rounds"]]
    return out + [text_reply(script["answer"])]


async def timed_turns(turns: int, with_tool: bool) -> list[float]:
    times = []
    section = {"max_calls_per_user_per_hour": 100000}
    async with tool_bot(*TOOLS, tools_section=section, limits={"user_burst": 100000, "chat_burst": 100000,
                        "user_messages_per_minute": 100000, "chat_messages_per_minute": 100000}) as (bot, server):
        for index in range(turns + 5):
            server.replies += [tool_reply(W("Paris")), text_reply("Sunny.")] if with_tool else [text_reply("Sunny.")]
            started = time.perf_counter()
            await bot.dispatcher.feed(make_event(f"weather? {index}", user=f"telegram:{index % 20 + 1}"), RecordingOutbox())
            if index >= 5:  # warm-up
                times.append((time.perf_counter() - started) * 1000)
    return times


async def success_rate() -> tuple[int, list[int]]:
    ok, failed = 0, []
    section = {"max_rounds": 4, "max_repairs": 2, "max_calls_per_user_per_hour": 100000}
    async with tool_bot(*TOOLS, tools_section=section) as (bot, server):
        for index, script in enumerate(CASES):
            ran.clear()
            server.replies.clear()
            server.replies += replies_for(script)
            outbox = RecordingOutbox()
            await bot.dispatcher.feed(make_event(f"case {index}", user=f"telegram:{index + 1}"), outbox)
            expected = [(name, {"days": 1, **args} if name == "weather" else args) for name, args in script["expected"]]
            if outbox.texts == [script["answer"]] and ran == expected:
                ok += 1
            else:
                failed.append(index)
    return ok, failed


async def main(turns: int) -> None:
    plain = await timed_turns(turns, with_tool=False)
    tool = await timed_turns(turns, with_tool=True)
    for name, values in (("plain turn", plain), ("one-tool turn", tool)):
        print(f"{name:14s} p50 {percentile(values, 0.5):7.2f} ms  p99 {percentile(values, 0.99):7.2f} ms  (n={len(values)})")
    print(f"{'added':14s} p50 {percentile(tool, 0.5) - percentile(plain, 0.5):7.2f} ms  "
          f"p99 {percentile(tool, 0.99) - percentile(plain, 0.99):7.2f} ms")
    ok, failed = await success_rate()
    print(f"scripted tool conversations: {ok}/{len(CASES)} succeeded ({100 * ok / len(CASES):.0f}%); "
          f"failed cases: {failed} (26-29 script models that never stop calling or name only unknown tools:"
          " each ends in the plain fallback reply, not a crash)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    asyncio.run(main(parser.parse_args().turns))
