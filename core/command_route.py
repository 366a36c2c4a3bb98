"""The command route: find the spec, run the command filters (authorization), bind, run, audit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.commands import CommandRegistry, CommandSpec
from core.dispatcher import Context
from core.errors import PermissionDenied, UnknownCommand
from core.events import IncomingMessage, Reply
from core.i18n import _
from core.ports import Store
from core.seams import CommandFilter


AdminCheck = Callable[[IncomingMessage], bool]


class RequireAdmin:
    """The authorization filter for every ``admin_only`` command; refusals are audited with their target."""

    def __init__(self, store: Store, is_admin: AdminCheck, is_chat_admin: AdminCheck) -> None:
        self._store, self._is_admin, self._is_chat_admin = store, is_admin, is_chat_admin

    def allows(self, spec: CommandSpec, event: IncomingMessage) -> bool:
        return not spec.admin_only or self._is_admin(event) or (spec.chat_admin and self._is_chat_admin(event))

    async def __call__(self, ctx: Context, spec: CommandSpec) -> None:
        if not self.allows(spec, ctx.event):
            call = ctx.event.command
            target = " ".join(call.args[1:]) if call is not None else ""
            await self._store.audit(ctx.event.user.qualified, f"admin {spec.name}", target, outcome="denied")
            raise PermissionDenied(f"{ctx.event.user} is not an admin", user_message=_("Only the bot's admins can do that."))


class CommandRoute:
    """Runs ``/name args`` (and ``/admin name args``) from the registry."""

    def __init__(self, commands: CommandRegistry, filters: Sequence[CommandFilter], store: Store) -> None:
        self._commands, self._filters, self._store = commands, filters, store

    @staticmethod
    def matches(ctx: Context) -> bool:
        return ctx.event.command is not None

    async def __call__(self, ctx: Context) -> None:
        call = ctx.event.command
        assert call is not None
        found = self._commands.find(call)
        if found is None:
            raise UnknownCommand(f"unknown command /{call.name}")
        spec, raw_args = found
        for command_filter in self._filters:
            await command_filter(ctx, spec)
        args = spec.bind(raw_args)
        user = ctx.event.user.qualified
        try:
            answer = await spec.handler(ctx, args)
        except Exception:
            if spec.admin_only:
                await self._store.audit(user, f"admin {spec.name}", " ".join(args), "error")
            raise
        if spec.admin_only:
            await self._store.audit(user, f"admin {spec.name}", " ".join(args), "ok")
        if answer is not None:
            reply = answer if isinstance(answer, Reply) else Reply(answer, private=spec.private)
            await ctx.reply(reply)
