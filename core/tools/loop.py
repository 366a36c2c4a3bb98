"""The tool loop of one chat turn: model asks → tools run → results go back → model goes on.

    answer = await answer_with_tools(registry, store, ctx, generator, request, streamer, turn_id=…)

Bounded three ways: ``max_rounds`` model calls that may ask for tools, ``turn_budget_s``
of wall time, and ``max_repairs`` mistakes (an unknown tool, arguments that are not
valid JSON or fail the schema, the same call repeated). Past any bound the model is
asked once more with ``tool_choice="none"`` for a plain reply. Tool results go to the
model as ``tool`` turns only, never into the system prompt; backends tokenize them as
plain text (special-token strings included). Without tools to offer, the turn is a
plain turn, byte for byte.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator

from core.dispatcher import Context
from core.events import ChatMessage, Chunk, GenerationRequest, ToolCall
from core.ports import Generator, Store
from core.streaming import ReplyStreamer
from core.tools.registry import ToolRegistry
from core.tools.runner import ToolOutcome, ToolRunner
from core.tools.spec import ToolContext
from core.tools.trace import keep_trace

GAVE_UP = "Sorry, I could not finish that with my tools. Could you ask again, maybe in other words?"
REPAIRED = frozenset({"unknown", "invalid"})


def status_line(tools: list[str]) -> str:
    return "using: " + ", ".join(name.replace("_", " ") for name in tools) + "…"


class _Capture:
    """Passes a round's chunks to the streamer and keeps its text and the calls of its last chunk."""

    def __init__(self) -> None:
        self.text = ""
        self.calls: tuple[ToolCall, ...] = ()

    async def wrap(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        async for chunk in chunks:
            self.text += chunk.text
            if chunk.tool_calls:
                self.calls = chunk.tool_calls
            yield chunk


async def _one(chunk: Chunk) -> AsyncIterator[Chunk]:
    yield chunk


async def answer_with_tools(
    registry: ToolRegistry,
    store: Store,
    ctx: Context,
    generator: Generator,
    request: GenerationRequest,
    streamer: ReplyStreamer,
    *,
    turn_id: int,
) -> str:
    """Stream the turn's reply through ``streamer`` and return its text (without status lines)."""
    event = ctx.event
    offered = registry.offered(event)
    if not offered:
        await streamer.consume(generator.stream(request))
        return streamer.text
    settings = registry.settings
    runner = ToolRunner(registry, store, ToolContext(ctx, registry.is_admin(event)))
    specs = tuple(tool.spec() for tool in offered)
    messages = list(request.messages)
    deadline = time.monotonic() + settings.turn_budget_s
    shows_status = settings.status and ctx.outbox.edit_interval() is not None
    reply, records, repairs = "", [], 0
    earlier: dict[tuple[str, str], ToolOutcome] = {}
    for round_index in range(settings.max_rounds + 1):
        left = deadline - time.monotonic()
        final = round_index == settings.max_rounds or repairs > settings.max_repairs or left <= 0
        params = dataclasses.replace(request.params, timeout_s=max(1.0, min(request.params.timeout_s, left)))
        round_request = dataclasses.replace(
            request, messages=tuple(messages), tools=specs, tool_choice="none" if final else "auto", params=params
        )
        capture = _Capture()
        await streamer.consume(capture.wrap(generator.stream(round_request)))
        reply += capture.text
        if not capture.calls or final:
            break
        messages.append(ChatMessage("assistant", capture.text, tool_calls=capture.calls))
        if shows_status:
            await streamer.consume(_one(Chunk(f"\n({status_line([c.name for c in capture.calls])})\n")))
        fresh = [call for call in capture.calls if (call.name, call.arguments) not in earlier]
        outcomes = {id(o.call): o for o in await runner.run_all(tuple(fresh))}
        for call in capture.calls:
            outcome = outcomes.get(id(call))
            if outcome is None:  # the same call again: a loop; the model is told, the tool not re-run
                repairs += 1
                before = earlier[(call.name, call.arguments)]
                outcome = ToolOutcome(call, "repeated", f"you already called this; its result was: {before.content}"
                                      " Now answer the user.")
            else:
                earlier[(call.name, call.arguments)] = outcome
                repairs += outcome.outcome in REPAIRED
            records.append(outcome.record())
            messages.append(ChatMessage("tool", outcome.content, tool_call_id=call.id))
    await keep_trace(registry.trace_store, event.user.qualified, turn_id, records)
    return reply if reply.strip() else GAVE_UP if records else reply
