"""The audit trail: ``/admin audit [N]``, and auditing of users' data commands.

Admin commands are audited by the router itself (core.app.run_command). This module
adds the user commands that touch a user's data (``/export``, ``/forget`` by default):
who, when, what, outcome. A command that erased the caller from the store (a completed
``/forget``) is not recorded here: the forget itself writes its one anonymous record
(core.personalization.privacy.forget_user_data), and an entry naming the caller, even by
a pseudonym, would lead back to the identity that was just erased.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import partial

from core.commands import ArgSpec, CommandRegistry, CommandSpec
from core.dispatcher import Context, Handler
from core.errors import CommandUsageError, PermissionDenied
from core.i18n import N_, _
from core.ports import Store
from core.records import AuditEntry

DEFAULT_ENTRIES = 20
MAX_ENTRIES = 100
_FIELD_CHARS = 80


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _FIELD_CHARS else text[: _FIELD_CHARS - 1] + "…"


def format_entry(entry: AuditEntry) -> str:
    when = dt.datetime.fromtimestamp(entry.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    target = f" {_short(entry.target)}" if entry.target else ""
    return f"#{entry.id} {when} {_short(entry.actor)}: {_short(entry.action)}{target} → {entry.outcome}"


async def admin_audit(store: Store, ctx: Context, args: tuple[str, ...]) -> str:
    """The latest audit entries, newest first, as many as fit in one message."""
    count = DEFAULT_ENTRIES
    if args:
        try:
            count = int(args[0])
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_ENTRIES:
            raise CommandUsageError(f"bad count {args[0]!r}", user_message=_("Give a number from 1 to {most}.", most=MAX_ENTRIES))
    entries = await store.recent_audit(count)
    if not entries:
        return ctx.t("The audit log is empty.")
    outbox = ctx.outbox
    limit = outbox.max_message_length
    text = ctx.t("Audit log, newest first ({n}):", n=len(entries))
    shown = 0
    for entry in entries:
        candidate = f"{text}\n{format_entry(entry)}"
        if outbox.measure(candidate) > limit - 40:  # room for the "showing" note
            break
        text, shown = candidate, shown + 1
    if shown < len(entries):
        text += "\n" + ctx.t("(showing {shown} of {total}; ask for fewer to see them all)", shown=shown, total=len(entries))
    return text


def audit_command(store: Store) -> CommandSpec:
    return CommandSpec(
        "audit",
        N_("Show the latest admin actions and data requests"),
        partial(admin_audit, store),
        (ArgSpec("count", N_("how many entries (default 20, at most 100)")),),
        admin_only=True,
        private=True,
    )


class AuditCommands:
    """Middleware: records named user commands (export, forget…) with their outcome."""

    def __init__(self, names: Iterable[str], commands: CommandRegistry, store: Store) -> None:
        self.names = frozenset(names)
        self._commands, self._store = commands, store

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        call = ctx.event.command
        found = self._commands.find(call) if call is not None else None
        if found is None or found[0].admin_only or found[0].name not in self.names:
            await call_next(ctx)
            return
        spec, args = found
        store, actor = self._store, ctx.event.user.qualified
        known_before = await store.get_user(actor) is not None
        outcome = "error"
        try:
            await call_next(ctx)
            outcome = "ok"
        except PermissionDenied:
            outcome = "denied"
            raise
        finally:
            if not (known_before and await store.get_user(actor) is None):  # erased: the forget wrote its record
                await store.audit(actor, spec.name, "self", outcome, {"args": list(args)})
