"""The access stage beyond bans: the reader's language, allow lists and DM pairing.

    access: drop_banned → locale → allow_list (only when [access] restricts anything)

``ChooseLocale`` runs after ``drop_banned``: everything the bot says itself from then on
(refusals included) is in the user's language (core/i18n.py).

With ``[access]`` lists or ``pairing``, an event passes when its user is an admin, is listed
(any linked identity), or was approved by pairing; or when its chat or server is listed.
Anything else in a group is ignored silently. In a DM with pairing on, the user gets a
one-time code to give an admin (``/admin approve CODE`` or ``personabot access approve
CODE``); without pairing they are told once that the bot is private. Codes and approvals live
in the store's settings table (like /link codes), so they survive restarts; only a hash of a
code is stored. Approvals and refusals are audited.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from core.commands import ArgSpec, CommandSpec
from core.dispatcher import Context, Handler
from core.errors import CommandUsageError
from core.events import ChatKind, IncomingMessage
from core.i18n import N_, _, choose_locale
from core.ports import Store
from core.settings import AccessSettings

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no I/L/1, O/0: easy to read out
CODE_LENGTH = 8


class ChooseLocale:
    """``/profile set language``, else the platform's hint, else the bot's language."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        profile = await self._store.get_profile(ctx.event.user.qualified)
        ctx.locale = choose_locale([profile.preferences.get("language"), ctx.event.locale, ctx.locale])
        await call_next(ctx)


def _code_scope(code: str) -> str:
    return "pairing:" + hashlib.sha256(code.encode("ascii")).hexdigest()


def _user_scope(user_id: str) -> str:
    return f"user:{user_id}"  # the user's own settings scope: exported and forgotten with them


def normalize_code(text: str) -> str | None:
    code = "".join(ch for ch in text.upper() if ch not in " -")
    return code if len(code) == CODE_LENGTH and all(ch in CODE_ALPHABET for ch in code) else None


@dataclass(frozen=True, slots=True)
class Approval:
    """What approving a code did: ``user`` is None when refused, with ``reason`` wrong|expired|used."""

    user: str | None
    reason: str = ""


class Pairing:
    """One-time codes for unknown DM users; an admin's approval lets the user in for good."""

    def __init__(self, store: Store, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.store, self.ttl_s, self.clock = store, ttl_s, clock
        self._lock = asyncio.Lock()  # approving is read-then-write: one at a time in this process

    async def is_approved(self, user_id: str) -> bool:
        return await self.store.get_setting(_user_scope(user_id), "access_approved") is not None

    async def pending(self, user_id: str) -> float | None:
        """When the user's live code expires, or None when they have none."""
        raw = await self.store.get_setting(_user_scope(user_id), "pairing")
        if raw is None:
            return None
        expires = float(json.loads(raw)["expires"])
        return expires if expires > self.clock() else None

    async def issue(self, user_id: str) -> str:
        """A new code for ``user_id`` (an older one of theirs stops working)."""
        async with self._lock:
            old = await self.store.get_setting(_user_scope(user_id), "pairing")
            if old is not None:
                await self.store.set_setting(json.loads(old)["scope"], "request", None)
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            expires = self.clock() + self.ttl_s
            scope = _code_scope(code)
            await self.store.set_setting(scope, "request", json.dumps({"user": user_id, "expires": expires, "used": False}))
            await self.store.set_setting(_user_scope(user_id), "pairing", json.dumps({"scope": scope, "expires": expires}))
        await self.store.audit(user_id, "pairing request", user_id)
        return f"{code[:4]}-{code[4:]}"

    async def approve(self, text: str, actor: str) -> Approval:
        """Approve the code ``text``; a wrong, expired or used code is refused. Both are audited (a refusal as "denied", with the reason)."""
        code = normalize_code(text)
        async with self._lock:
            scope = _code_scope(code) if code is not None else None
            raw = await self.store.get_setting(scope, "request") if scope is not None else None
            request = json.loads(raw) if raw is not None else None
            if request is None:
                result = Approval(None, "wrong")
            elif request["used"]:
                result = Approval(None, "used")
            elif request["expires"] <= self.clock():
                result = Approval(None, "expired")
            else:
                result = Approval(request["user"])
                request["used"] = True  # kept (not deleted), so a second use is told apart from a typo
                await self.store.set_setting(scope, "request", json.dumps(request))  # type: ignore[arg-type]
                await self.store.set_setting(_user_scope(result.user), "pairing", None)
                approval = json.dumps({"by": actor, "at": self.clock()})
                await self.store.set_setting(_user_scope(result.user), "access_approved", approval)
        if result.user is None:
            await self.store.audit(actor, "pairing approve", "", outcome="denied", detail={"reason": result.reason})
        else:
            await self.store.audit(actor, "pairing approve", result.user)
        return result


class AllowList:
    """The ``access:allow_list`` middleware; see the module docstring for the rule."""

    def __init__(
        self, settings: AccessSettings, store: Store, is_admin: Callable[[IncomingMessage], bool], pairing: Pairing | None
    ) -> None:
        self._settings, self._store, self._is_admin, self._pairing = settings, store, is_admin, pairing
        self._users, self._chats, self._servers = set(settings.users), set(settings.chats), set(settings.servers)
        self._told: set[str] = set()  # DM users told the bot is private (once per process)

    async def allowed(self, event: IncomingMessage) -> bool:
        if self._is_admin(event) or event.key.chat_qualified in self._chats:
            return True
        if event.from_bot and event.user.qualified in self._settings.bots:
            return True  # a listed bot (core/etiquette.py caps the turns)
        if event.space_id is not None and f"{event.key.platform}:{event.space_id}" in self._servers:
            return True
        identities = await self._store.linked_identities(event.user.qualified)
        if self._users.intersection(identities):
            return True
        if self._pairing is not None:
            for identity in identities:
                if await self._pairing.is_approved(identity):
                    return True
        return False

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        event = ctx.event
        if await self.allowed(event):
            await call_next(ctx)
            return
        user = event.user.qualified
        log.info("event %s from %s: not on the allow list", event.event_id, user)
        if event.chat_kind is ChatKind.GROUP:
            return
        if self._pairing is None:
            if user not in self._told:
                self._told.add(user)
                await ctx.reply(ctx.t("This bot only talks to people on its list. Ask its operator for access."))
            return
        expires = await self._pairing.pending(user)
        if expires is not None:
            minutes = max(1, round((expires - self._pairing.clock()) / 60))
            await ctx.reply(ctx.nt(
                "Your access is waiting for an admin's approval (the code expires in {n} minute).",
                "Your access is waiting for an admin's approval (the code expires in {n} minutes).",
                minutes,
            ))
            return
        code = await self._pairing.issue(user)
        minutes = max(1, round(self._pairing.ttl_s / 60))
        await ctx.reply(ctx.nt(
            "This bot needs an admin's approval first. Give an admin this code: {code} (valid {n} minute, once).",
            "This bot needs an admin's approval first. Give an admin this code: {code} (valid {n} minutes, once).",
            minutes,
            code=code,
        ))


async def approve_command(pairing: Pairing, ctx: Context, args: tuple[str, ...]) -> str:
    result = await pairing.approve(args[0], ctx.event.user.qualified)
    if result.user is None:
        raise CommandUsageError(
            f"pairing code refused: {result.reason}",
            user_message=_("That code is not valid: it is wrong, expired or already used."),
        )
    return ctx.t("Approved {user}: they can talk to the bot now.", user=result.user)


def approve_spec(pairing: Pairing) -> CommandSpec:
    return CommandSpec(
        "approve",
        N_("Let a user in with their pairing code"),
        partial(approve_command, pairing),
        (ArgSpec("code", N_("the code the user got, e.g. ABCD-EFGH"), required=True),),
        admin_only=True,
        private=True,
    )
