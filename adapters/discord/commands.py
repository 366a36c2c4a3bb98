"""Slash commands generated from the core's CommandRegistry through ``discord.app_commands``.

User commands become top-level slash commands; admin commands become sub-commands
of one ``/admin`` group with ``default_permissions(manage_guild=True)``. Server owners
can override default permissions, so that only hides the group: the authorization
itself is the core's ``require_admin`` filter (admins ``discord:<id>`` or a role in
``admin_roles``), which every invocation passes through ``Dispatcher.feed``.

Descriptions are ``locale_str`` msgids; :class:`CatalogTranslator` gives Discord their
``description_localizations`` from the catalogs (core/i18n.py) when the tree is synced.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Optional

import discord
from discord import app_commands

from core.commands import ADMIN_GROUP, CommandRegistry, CommandSpec
from core.errors import ConfigError, PersonabotError, PlatformError
from core.events import CommandCall
from core.i18n import N_, SOURCE_LOCALE, choose_locale, normalize_locale, t

from adapters.discord.convert import interaction_event
from adapters.discord.outbox import InteractionOutbox

if TYPE_CHECKING:
    from core.runtime import Runtime

log = logging.getLogger(__name__)

Invoke = Callable[[discord.Interaction, CommandSpec, Sequence[Optional[str]]], Awaitable[None]]

ADMIN_DESCRIPTION = N_("Bot administration (bot admins only)")
STALE_COMMAND = N_("This command changed since it was published. Ask the bot's operator to run `personabot discord sync`.")


class CatalogTranslator(app_commands.Translator):
    """Discord's localizations of our descriptions, for each Discord locale we have a catalog of."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        ours = normalize_locale(locale.value)
        if ours is None or ours == SOURCE_LOCALE:
            return None
        text = t(ours, string.message)
        return text[:100] if text != string.message else None


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident.isidentifier() else f"_{ident}"


def spec_command(spec: CommandSpec, invoke: Invoke) -> app_commands.Command:
    """One app command for one spec: string options named, described and with choices as declared."""
    params = [(arg, _identifier(arg.name)) for arg in spec.args]

    async def callback(interaction: discord.Interaction, **options: Optional[str]) -> None:
        await invoke(interaction, spec, [options.get(ident) for _, ident in params])

    callback.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction)]
        + [
            inspect.Parameter(
                ident,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=str if arg.required else Optional[str],
                default=inspect.Parameter.empty if arg.required else None,
            )
            for arg, ident in params
        ]
    )
    if params:
        app_commands.describe(**{ident: app_commands.locale_str((arg.description or arg.name)[:100]) for arg, ident in params})(callback)
    renames = {ident: arg.name for arg, ident in params if ident != arg.name}
    if renames:
        app_commands.rename(**renames)(callback)
    choices = {
        ident: [app_commands.Choice(name=choice, value=choice) for choice in arg.choices]
        for arg, ident in params
        if arg.choices
    }
    if choices:
        app_commands.choices(**choices)(callback)
    return app_commands.Command(name=spec.name, description=app_commands.locale_str(spec.description), callback=callback)


def build_commands(registry: CommandRegistry, invoke: Invoke) -> list[app_commands.Command | app_commands.Group]:
    """Every spec of the registry as app commands; ConfigError if Discord's limits are exceeded."""
    commands: list[app_commands.Command | app_commands.Group] = [
        spec_command(spec, invoke) for spec in registry.user_commands()
    ]
    admin_specs = registry.admin_commands()
    if admin_specs:
        group = app_commands.Group(
            name=ADMIN_GROUP, description=app_commands.locale_str(ADMIN_DESCRIPTION), default_permissions=discord.Permissions(manage_guild=True)
        )
        for spec in admin_specs:
            try:
                group.add_command(spec_command(spec, invoke))
            except ValueError as error:
                raise ConfigError(f"discord: /{ADMIN_GROUP} {spec.name}: {error} (Discord allows 25)") from None
        commands.append(group)
    return commands


def positional_args(values: Sequence[Optional[str]]) -> tuple[str, ...] | None:
    """Option values as the core's positional args; None if an option was skipped before a given one."""
    given = list(values)
    while given and given[-1] is None:
        given.pop()
    if any(value is None for value in given):
        return None
    return tuple(value for value in given if value is not None)


class CoreCommandTree(app_commands.CommandTree):
    """The tree of one bot: commands from the bot's registry, answered through the dispatcher."""

    def __init__(
        self,
        client: discord.Client,
        app: "Runtime",
        *,
        edit_interval: float | None,
        auto_defer_after: float = 2.0,
        track: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> None:
        super().__init__(client)
        self.app = app
        self.edit_interval = edit_interval
        self.auto_defer_after = auto_defer_after  # Discord drops unanswered interactions after 3 s
        self._track = track  # lets the client wait for answers in progress at shutdown
        for command in build_commands(app.commands, self.invoke):
            self.add_command(command)

    async def invoke(self, interaction: discord.Interaction, spec: CommandSpec, values: Sequence[Optional[str]]) -> None:
        with self._track():
            await self._answer(interaction, spec, values)

    async def _answer(self, interaction: discord.Interaction, spec: CommandSpec, values: Sequence[Optional[str]]) -> None:
        args = positional_args(values)
        if args is None:
            await interaction.response.send_message(f"Usage: {spec.usage}", ephemeral=True)
            return
        call = CommandCall(ADMIN_GROUP, (spec.name, *args)) if spec.admin_only else CommandCall(spec.name, args)
        event = interaction_event(interaction, call)
        outbox = InteractionOutbox(interaction, private=spec.private, edit_interval=self.edit_interval)
        # Slow answers are acknowledged at once, except a refusal, which must stay ephemeral.
        if spec.uses_model and (not spec.admin_only or self.app.is_admin(event)):
            await outbox.defer()
        feed = asyncio.ensure_future(self.app.dispatcher.feed(event, outbox))
        try:
            done, _ = await asyncio.wait({feed}, timeout=self.auto_defer_after)
            if not done:  # unexpectedly slow (a busy database): acknowledge before Discord gives up
                try:
                    await outbox.defer()
                except PlatformError as error:  # too late; the answer will fail the same way and be logged
                    log.warning("%s", error)
            await feed
        except asyncio.CancelledError:  # shutdown gave up waiting: stop the answer too
            feed.cancel()
            raise
        await outbox.finish()

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        if isinstance(error, (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)):
            log.warning("stale slash command %s: %s", interaction.data and interaction.data.get("name"), error)
            text = STALE_COMMAND
        else:
            log.error("slash command failed", exc_info=error)
            text = PersonabotError.user_message
        text = t(choose_locale([str(interaction.locale.value), self.app.dispatcher.locale]), text)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not tell the user about a failed command: %s", exc)


async def sync_commands(
    tree: app_commands.CommandTree, *, guilds: Sequence[str] = (), globally: bool = False, clear: bool = False
) -> dict[str, int]:
    """Publish the tree to each guild (instant) and/or globally; ``clear`` publishes nothing there instead.

    Returns how many commands each target now has. Raises ConfigError for a guild the
    bot may not publish to, PlatformError for other failures. The tree is unchanged after.
    """
    if tree.translator is None:
        await tree.set_translator(CatalogTranslator())
    published: dict[str, int] = {}
    for guild_id in guilds:
        guild = discord.Object(id=int(guild_id))
        if not clear:
            tree.copy_global_to(guild=guild)
        try:
            published[f"guild {guild_id}"] = len(await tree.sync(guild=guild))
        except discord.Forbidden as error:
            raise ConfigError(
                f"discord: cannot publish commands to guild {guild_id}: invite the bot with the"
                " 'applications.commands' scope"
            ) from error
        except discord.HTTPException as error:
            raise PlatformError(f"discord: command sync to guild {guild_id} failed: {error}") from error
        finally:
            tree.clear_commands(guild=guild)
    if globally:
        saved = tree.get_commands() if clear else []
        if clear:
            tree.clear_commands(guild=None)
        try:
            published["global"] = len(await tree.sync())
        except discord.HTTPException as error:
            raise PlatformError(f"discord: global command sync failed: {error}") from error
        finally:
            for command in saved:
                tree.add_command(command)
    return published


def command_payloads(tree: app_commands.CommandTree) -> list[dict[str, Any]]:
    """The JSON Discord receives at sync (for `personabot discord sync --dry-run` and tests)."""
    return [command.to_dict(tree) for command in tree.get_commands()]
