"""Export, forget, retention and one-time link codes: the user's control over their data.

Used by the chat commands (/export, /forget, /link) and by the operator's CLI
(``personabot users export|forget``), so both do exactly the same thing. Linked
identities are one person: export and forget cover the whole group, and what the
features keep about them (the ``user_data`` seam: plugins) too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from collections.abc import Sequence
from typing import Any

from core.errors import PluginError
from core.i18n import _
from core.ports import Store
from core.seams import UserDataHolder

log = logging.getLogger(__name__)

EXPORT_FORMAT = "personabot-export/1"


def user_scope(user_id: str) -> str:
    """Settings scope of one user's own options (forgotten and exported with them)."""
    return f"user:{user_id}"


async def export_user_data(store: Store, user_id: str, holders: Sequence[UserDataHolder] = ()) -> dict[str, Any]:
    """Everything stored about ``user_id`` and the identities linked to it; each identity
    also carries what every holder of user data exports, under the holder's name."""
    ids = await store.linked_identities(user_id)
    identities = []
    for identity in ids:
        entry = await store.export_user(identity)
        for holder in holders:
            entry[holder.name] = await holder.export_user(identity)
        identities.append(entry)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "user_id": user_id,
        "linked_identities": [other for other in ids if other != user_id],
        "identities": identities,
    }


def export_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


async def forget_user_data(
    store: Store, user_id: str, *, actor: str, holders: Sequence[UserDataHolder] = ()
) -> tuple[list[str], dict[str, int]]:
    """Delete everything about ``user_id`` and its linked identities; returns (ids, row
    counts; the holders' counts under their own keys, e.g. ``plugin:NAME``).

    Writes the one audit record of the forget, after the deletion so that it survives
    it: ``actor`` (``self`` when the user asked, else the operator), when, and what was
    deleted (row counts by kind), with no identifier that leads back to the user (no id,
    no pseudonym; an error text has the ids cut out).

    The holders' forget hooks run first, while the data they may look up still
    exists. If one fails, the core data is deleted all the same, and then a PluginError
    says what is left (send /forget again to retry).
    """
    ids = await store.linked_identities(user_id)
    totals: Counter[str] = Counter()
    failures: list[PluginError] = []
    for holder in holders:
        for identity in ids:
            try:
                counts = await holder.forget_user(identity)
            except PluginError as error:
                failures.append(error)
                continue
            totals.update(counts)
    for identity in ids:
        totals.update(await store.forget_user(identity))
    detail: dict[str, Any] = {
        "identities": len(ids), "rows": sum(totals.values()),
        "deleted": {kind: n for kind, n in sorted(totals.items()) if n},
    }
    if failures:
        incomplete = "; ".join(map(str, failures))
        for identity in ids:
            incomplete = incomplete.replace(identity, "[forgotten]")
        detail["incomplete"] = incomplete
    await store.audit(actor, "forget", "", outcome="error" if failures else "ok", detail=detail)
    if failures:
        raise PluginError(
            "forget: the core data was deleted, but not all plugin data: " + "; ".join(map(str, failures)),
            user_message=_(
                "I deleted your messages, profile and memories, but some data kept by the bot's add-ons "
                "could not be deleted yet; the operator was told. Send /forget again later to retry."
            ),
        )
    return ids, dict(totals)


async def apply_retention(store: Store, days: int, now: float | None = None) -> int:
    """Delete messages older than ``days`` days; returns how many went."""
    cutoff = (time.time() if now is None else now) - days * 86400.0
    return await store.delete_messages_before(cutoff)


async def retention_loop(store: Store, days: int, interval_s: float) -> None:
    """Apply retention every ``interval_s`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            deleted = await apply_retention(store, days)
            if deleted:
                log.info("retention: deleted %d messages older than %d days", deleted, days)
        except Exception:  # a failed sweep is retried at the next interval
            log.exception("retention sweep failed")


# -- link codes ------------------------------------------------------------------------

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no I/L/1, O/0: easy to type
CODE_LENGTH = 8  # 31^8 ≈ 8.5e11, with attempts limited per user


def normalize_code(text: str) -> str | None:
    code = "".join(ch for ch in text.upper() if ch not in " -")
    return code if len(code) == CODE_LENGTH and all(ch in CODE_ALPHABET for ch in code) else None


def _code_scope(code: str) -> str:
    return "link:" + hashlib.sha256(code.encode("ascii")).hexdigest()


class LinkCodes:
    """One-time codes joining two identities. Only a hash of a code is stored, in the
    ``settings`` table (so the store's export and forget cover it); one live code per
    user; a code works once, and not after ``ttl_s`` seconds."""

    def __init__(self, store: Store, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.store, self.ttl_s, self.clock = store, ttl_s, clock
        self._lock = asyncio.Lock()  # redeem is read-then-delete: one at a time

    async def issue(self, user_id: str) -> str:
        async with self._lock:
            await self._drop_code_of(user_id)
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            scope = _code_scope(code)
            owner = json.dumps({"user": user_id, "expires": self.clock() + self.ttl_s}, ensure_ascii=False)
            await self.store.set_setting(scope, "owner", owner)
            await self.store.set_setting(user_scope(user_id), "link_code", scope)
        return f"{code[:4]}-{code[4:]}"

    async def redeem(self, text: str) -> str | None:
        """The owner of a valid code (which is used up), or None for any other input."""
        code = normalize_code(text)
        if code is None:
            return None
        scope = _code_scope(code)
        async with self._lock:
            raw = await self.store.get_setting(scope, "owner")
            if raw is None:
                return None
            owner = json.loads(raw)
            await self.store.set_setting(scope, "owner", None)
            await self.store.set_setting(user_scope(owner["user"]), "link_code", None)
        return owner["user"] if owner["expires"] > self.clock() else None

    async def _drop_code_of(self, user_id: str) -> None:
        old = await self.store.get_setting(user_scope(user_id), "link_code")
        if old is not None:
            await self.store.set_setting(old, "owner", None)
