"""The console Outbox on a terminal, which cannot take back what it printed."""

from __future__ import annotations

import io

from adapters.console.adapter import ConsoleOutbox
from core.events import Chunk, ConversationKey
from core.streaming import ReplyStreamer

KEY = ConversationKey("console", "you")


async def chunks(*texts):
    for text in texts:
        yield Chunk(text)


async def shown(streamed: tuple[str, ...], final: str) -> str:
    out = io.StringIO()
    streamer = ReplyStreamer(ConsoleOutbox(out, prefix="bot: "), KEY)
    await streamer.consume(chunks(*streamed))
    await streamer.finish(final)
    return out.getvalue()


async def test_a_tool_status_line_taken_out_of_the_final_reply_is_not_printed_twice():
    printed = await shown(("Let me check.", "\n(using: knowledge search…)\n", "Refunds take 5 days."),
                          "Let me check.Refunds take 5 days.")
    assert printed.count("Refunds take 5 days.") == 1
    assert printed.startswith("bot: Let me check.")


async def test_a_replaced_reply_is_printed_again_in_full():
    printed = await shown(("Here is a bad", " word"), "Sorry, I can't say that.")
    assert "Here is a bad" in printed and printed.rstrip().endswith("bot: Sorry, I can't say that.")


async def test_streamed_text_is_printed_once_as_it_grows():
    assert await shown(("你好", "，世界", "！"), "你好，世界！") == "bot: 你好，世界！"


async def test_a_word_taken_out_of_a_line_prints_the_new_version():
    printed = await shown(("Here is a bad", " word."), "Here is a word.")
    assert printed.rstrip().endswith("bot: Here is a word.")
