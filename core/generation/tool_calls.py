"""Tool calls in a local model's own words: Qwen/Hermes-style JSON between tags.

    <tool_call>
    {"name": "weather", "arguments": {"city": "Paris"}}
    </tool_call>

Chat templates of this family (Qwen2/2.5/3, Hermes, many fine-tunes) describe the tools in
the prompt and teach the model to answer with such blocks. :func:`tool_call_stream` passes
the reply through until a block starts, keeps the rest back, and turns the blocks into
:class:`~core.events.ToolCall` objects on the last chunk (``FinishReason.TOOL_CALLS``).
A block whose JSON is broken still becomes a call (its raw text as arguments), so the tool
loop can ask the model to repair it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

from core.events import Chunk, FinishReason, ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|$)", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"]*)"')


def parse_tool_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """The text before the first block, and the calls of every block."""
    start = text.find(OPEN)
    if start < 0:
        return text, ()
    calls = []
    for index, match in enumerate(_BLOCK.finditer(text, start)):
        raw = match.group(1).strip()
        try:
            data = json.loads(raw)
            name = str(data.get("name", "")) if isinstance(data, dict) else ""
            arguments = data.get("arguments", data.get("parameters", {})) if isinstance(data, dict) else {}
            encoded = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        except ValueError:
            found = _NAME.search(raw)
            name, encoded = (found.group(1) if found else ""), raw
        calls.append(ToolCall(f"call_{index}", name, encoded))
    return text[:start], tuple(calls)


def _held_prefix(text: str) -> int:
    """How many trailing characters of ``text`` could be the start of ``<tool_call>``."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


async def tool_call_stream(chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """Text streams as it comes until a tool-call block starts; the calls ride on the last chunk."""
    seen = ""  # everything generated
    shown = 0  # characters of ``seen`` already passed on
    async for chunk in chunks:
        seen += chunk.text
        if chunk.finish_reason is not None:
            before, calls = parse_tool_calls(seen)
            if calls and chunk.finish_reason in (FinishReason.STOP, FinishReason.STOP_STRING, FinishReason.LENGTH):
                yield Chunk(before[shown:], FinishReason.TOOL_CALLS, calls)
            else:
                yield Chunk(seen[shown:] if not calls else before[shown:], chunk.finish_reason)
            return
        cut = seen.find(OPEN)
        safe = cut if cut >= 0 else len(seen) - _held_prefix(seen)
        if safe > shown:
            yield Chunk(seen[shown:safe])
            shown = safe
