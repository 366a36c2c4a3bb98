"""Actions held for the user's approval, in the store: asked for in one message, approved
by a later one (``/forget confirm``, ``/confirm`` of a tool call), from any process
(``personabot ask``, a restart), until a wall-time deadline.

    held = await hold(store, scope, "forget_confirm", {...}, ttl_s=120, now=time.time())
    taken = await take(store, scope, "forget_confirm", now=time.time())
    if taken.status == "ok": ...            # "none" | "expired" | "used"

One action per (scope, name): a newer hold replaces an older one. Each is used at most
once, whichever process takes it: the claim is the store's atomic ``record_event`` on the
hold's id. A used one stays as a tombstone until its deadline, so a second approval is
told "already used", not "nothing waiting". The scope names the user, so what is held is
exported and forgotten with them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from core.ports import Store

Status = Literal["ok", "none", "expired", "used"]


@dataclass(frozen=True, slots=True)
class Taken:
    status: Status
    payload: dict[str, Any] = field(default_factory=dict)  # what was held (empty for "none")


async def hold(store: Store, scope: str, name: str, payload: dict[str, Any], *, ttl_s: float, now: float) -> str:
    """Hold ``payload`` (JSON-able) until ``now + ttl_s``; returns the hold's id."""
    held_id = secrets.token_hex(6)
    await store.set_setting(scope, name, json.dumps({**payload, "id": held_id, "until": now + ttl_s}, ensure_ascii=False))
    return held_id


async def peek(store: Store, scope: str, name: str, *, now: float) -> Taken:
    """What is held, without using it up."""
    raw = await store.get_setting(scope, name)
    if raw is None:
        return Taken("none")
    try:
        data = json.loads(raw)
        until = float(data["until"])
    except (ValueError, KeyError, TypeError):
        return Taken("none")
    if data.get("used"):
        return Taken("used" if until > now else "none", data)
    return Taken("ok" if until > now else "expired", data)


async def take(store: Store, scope: str, name: str, *, now: float) -> Taken:
    """Use the held action: ``ok`` once; then ``used`` until its deadline. An expired one is dropped."""
    seen = await peek(store, scope, name, now=now)
    if seen.status == "expired" or (seen.status == "none" and seen.payload):
        await store.set_setting(scope, name, None)
    if seen.status != "ok":
        return seen
    if not await store.record_event(f"confirm:{scope}:{name}:{seen.payload['id']}"):
        return Taken("used", seen.payload)  # another process took it first
    await store.set_setting(scope, name, json.dumps({**seen.payload, "used": True}, ensure_ascii=False))
    return seen


async def drop(store: Store, scope: str, name: str) -> None:
    await store.set_setting(scope, name, None)
