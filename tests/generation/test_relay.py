"""The common tail of the backends (core/generation/relay.py): what reaches the user's text."""

from __future__ import annotations

import asyncio
import time

from core.events import FinishReason
from core.generation.relay import Interrupt, relay


async def pieces(*texts):
    for text in texts:
        yield text


async def finish() -> FinishReason:
    return FinishReason.STOP


async def collect(*texts, stops=()):
    chunks = [chunk async for chunk in relay(pieces(*texts), stop_producer=lambda: None, finish=finish, stops=stops,
                                              deadline=time.monotonic() + 30, interrupt=Interrupt())]
    return "".join(chunk.text for chunk in chunks), chunks[-1].finish_reason


async def test_bytes_that_are_no_utf8_never_reach_the_reply():
    # b"\xe5\x90" (half of 名) decodes to U+FFFD: a byte-level model sampled an incomplete character
    broken = b"\xe5\x90".decode("utf-8", "replace")
    assert await collect("你好，", broken, "！今天", "过得怎么样？") == ("你好，！今天过得怎么样？", FinishReason.STOP)


async def test_leading_space_is_dropped_and_stop_strings_end_the_reply():
    assert await collect("  Hello", " there", "\nUser:", " more", stops=("\nUser:",)) == ("Hello there", FinishReason.STOP_STRING)
