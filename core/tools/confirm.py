"""Calls of ``confirm`` tools, held for the user's ``/confirm`` in the store (core/confirmations.py,
the same mechanism as ``/forget confirm``): approval works from a later ``personabot ask``
call or after a restart, until ``[tools] confirm_ttl_s``.

What is held is the tool's name and the model's raw arguments (checked again against the
tool's schema when it runs), under a scope naming the user (exported and forgotten with
them). The chat also notes whose approval it waits for, so another member's /confirm in
a group is told it is not theirs. Expired, someone else's and already used approvals are
refused with a short message and audited (``tool:confirm``, outcome ``denied``).
"""

from __future__ import annotations

import json
from typing import Any

from core import confirmations
from core.events import IncomingMessage
from core.ports import Store
from core.tools.spec import ToolContext

NAME = "confirm"
AUDIT_ACTION = "tool:confirm"


def user_scope(user_id: str) -> str:
    return f"tools:{user_id}"


def chat_scope(event: IncomingMessage) -> str:
    return f"tools:chat:{event.key.chat_qualified}"


async def hold_call(store: Store, ctx: ToolContext, tool_name: str, arguments: dict[str, Any], *, ttl_s: float,
                    now: float) -> None:
    """Hold one call for the asking user's /confirm (the latest replaces an earlier one)."""
    payload = {"tool": tool_name, "arguments": arguments, "chat": ctx.event.key.qualified}
    await confirmations.hold(store, user_scope(ctx.user_id), NAME, payload, ttl_s=ttl_s, now=now)
    waiting = json.dumps({"user": ctx.user_id, "until": now + ttl_s}, ensure_ascii=False)
    await store.set_setting(chat_scope(ctx.event), NAME, waiting)


async def someone_else_waits(store: Store, event: IncomingMessage, now: float) -> bool:
    raw = await store.get_setting(chat_scope(event), NAME)
    try:
        waiting = json.loads(raw) if raw else {}
        return waiting.get("user") not in (None, event.user.qualified) and float(waiting["until"]) > now
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
