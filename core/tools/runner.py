"""Running the calls a model asked for: checked, limited, timed out, audited.

Every call, whatever becomes of it, ends as one :class:`ToolOutcome` whose ``content``
is what the model is told (a result, or why there is none) and as one audit entry
(user, tool, outcome, the arguments summarised with secrets masked).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from core.errors import PersonabotError, PluginError
from core.events import ToolCall
from core.logmask import PROCESS_MASK
from core.ports import Store
from core.tools.confirm import hold_call
from core.tools.registry import ToolRegistry
from core.tools.spec import ArgumentsInvalid, Tool, ToolContext, ToolError

log = logging.getLogger(__name__)

SECRET_NAME = re.compile(r"(pass(word)?|secret|token|api[_-]?key|auth|credential)", re.IGNORECASE)
SUMMARY_CHARS = 40
AUDIT_OUTCOME = {"ok": "ok", "refused": "denied", "limited": "denied", "pending": "denied"}  # the store's three


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    call: ToolCall
    outcome: str  # ok | error | timeout | unknown | invalid | refused | limited | pending
    content: str  # what the model is told

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def record(self) -> dict[str, Any]:
        """As stored with the turn (exported with the user's data)."""
        return {"id": self.call.id, "tool": self.call.name, "arguments": self.call.arguments,
                "outcome": self.outcome, "result": self.content}


def summarise(arguments: Any, secret_args: tuple[str, ...] = ()) -> str:
    """Arguments for the audit: secret-looking names masked, long strings cut, known secrets masked."""
    if not isinstance(arguments, dict):
        return PROCESS_MASK.redact(str(arguments)[:SUMMARY_CHARS])
    parts = []
    for name, value in arguments.items():
        if name in secret_args or SECRET_NAME.search(str(name)):
            shown = "***"
        else:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            shown = text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"
        parts.append(f"{name}={shown}")
    return PROCESS_MASK.redact(", ".join(parts))


def result_text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ToolRunner:
    """The tool calls of one turn (one per turn: it counts the turn's calls)."""

    def __init__(self, registry: ToolRegistry, store: Store, ctx: ToolContext) -> None:
        self.registry, self.store, self.ctx = registry, store, ctx
        self.calls = 0

    async def run_all(self, calls: tuple[ToolCall, ...]) -> list[ToolOutcome]:
        """Independent calls of one round run concurrently; results keep the calls' order."""
        return list(await asyncio.gather(*(self.run(call) for call in calls)))

    async def run(self, call: ToolCall) -> ToolOutcome:
        tool = self.registry.get(call.name)
        started = time.monotonic()
        outcome, arguments = await self._checked(call, tool)
        if outcome is None and tool is not None:
            outcome = await self._execute(call, tool, arguments)
        await self._audit(call, tool, outcome, arguments, time.monotonic() - started)
        return outcome

    async def _checked(self, call: ToolCall, tool: Tool | None) -> tuple[ToolOutcome | None, Any]:
        settings, event = self.registry.settings, self.ctx.event
        if tool is None:
            known = ", ".join(t.name for t in self.registry.offered(event)) or "none"
            return ToolOutcome(call, "unknown", f"error: there is no tool named {call.name!r} (tools: {known})"), None
        refusal = self.registry.refusal(tool, event)
        if refusal:
            return ToolOutcome(call, "refused", f"error: {refusal}; answer without it"), None
        try:
            raw = json.loads(call.arguments or "{}")
        except ValueError as exc:
            return ToolOutcome(call, "invalid", f"error: the arguments are not valid JSON ({exc.msg}); send a JSON object"), call.arguments
        if not isinstance(raw, dict):
            return ToolOutcome(call, "invalid", "error: the arguments must be a JSON object"), raw
        try:
            arguments = tool.validate(raw)
        except ArgumentsInvalid as exc:
            return ToolOutcome(call, "invalid", f"error: invalid arguments: {exc}"), raw
        self.calls += 1
        if self.calls > settings.max_calls_per_turn:
            return ToolOutcome(call, "limited", "error: too many tool calls in this turn; answer with what you have"), raw
        period = time.strftime("%Y-%m-%dT%H", time.gmtime())
        if not await self.store.use_quota(f"tools:{self.ctx.user_id}", period, settings.max_calls_per_user_per_hour):
            return ToolOutcome(call, "limited", "error: the user's hourly tool limit is reached; answer without tools"), raw
        if tool.confirm:
            await hold_call(self.store, self.ctx, tool.name, raw, ttl_s=settings.confirm_ttl_s, now=time.time())
            return ToolOutcome(call, "pending", "not run yet: this action needs the user's approval. Tell the user to "
                               "send /confirm to run it, or ignore it to cancel."), raw
        return None, arguments

    async def _execute(self, call: ToolCall, tool: Tool, arguments: dict[str, Any]) -> ToolOutcome:
        limit = min(tool.timeout_s, self.registry.settings.tool_timeout_s)
        try:
            value = await asyncio.wait_for(tool.handler(self.ctx, **arguments), limit)
        except asyncio.TimeoutError:
            return ToolOutcome(call, "timeout", f"error: the tool {tool.name} did not answer within {limit:g} s")
        except Exception as exc:
            log.warning("tool %s failed: %s: %s", tool.name, type(exc).__name__, exc)
            if isinstance(exc, ToolError):
                message = str(exc)
            elif isinstance(exc, PersonabotError) and not isinstance(exc, PluginError):
                message = str(exc.user_message)  # a deliberate answer: usage, not found, a limit
            else:
                message = type(exc).__name__
            return ToolOutcome(call, "error", f"error: the tool {tool.name} failed: {message}")
        return ToolOutcome(call, "ok", result_text(value, self.registry.settings.max_result_chars))

    async def _audit(self, call: ToolCall, tool: Tool | None, outcome: ToolOutcome, arguments: Any, seconds: float) -> None:
        detail = {"arguments": summarise(arguments, tool.secret_args if tool else ()), "ms": round(seconds * 1000, 1),
                  "result": outcome.outcome}
        coarse = AUDIT_OUTCOME.get(outcome.outcome, "error")
        try:
            await self.store.audit(self.ctx.user_id, f"tool:{call.name}"[:64], tool.owner if tool else "", coarse, detail)
        except Exception:
            log.exception("could not audit the tool call %s", call.name)
