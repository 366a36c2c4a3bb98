"""``personabot discord sync``: publish a bot's slash commands on demand.

``register(app)`` adds the ``discord`` sub-app to the main typer app. The commands
published are the bot's (built-in, features, plugins), so the bot starts as for
``run``, on a throwaway in-memory store and without loading the model.
Exit codes: 0 ok, 1 Discord failed, 2 bad bot file or token (one line on stderr).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Optional

import typer

from adapters.discord.settings import DiscordSettings
from bots.common import BotOption
from core.errors import ConfigError, GenerationError
from core.events import ChatMessage, Chunk, GenerationRequest
from core.settings import BotSettings


class NoModel:
    """The Generator of an App that only lists its commands: it never generates."""

    name = "none"
    context_window = 2048

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        raise GenerationError("no model is loaded for `personabot discord sync`")
        yield  # pragma: no cover - makes this an async generator

    async def health(self) -> dict[str, Any]:
        return {"backend": "none"}

    async def aclose(self) -> None:
        return None


async def sync(
    settings: BotSettings, *, guilds: Sequence[str], globally: bool, clear: bool, dry_run: bool
) -> dict[str, Any]:
    """Publish (or with ``dry_run`` only list) the commands; returns what was done per target."""
    import discord

    from adapters.discord.bot import api_endpoint, login, without_voice
    from adapters.discord.commands import CoreCommandTree, command_payloads, sync_commands
    from bots.app_factory import bot_app
    from core.storage.sqlite import SQLiteStore

    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=NoModel()) as running:
        without_voice()
        client = discord.Client(intents=discord.Intents.default())
        tree = CoreCommandTree(client, running, edit_interval=None)
        if dry_run:
            return {"commands": command_payloads(tree)}
        options = settings.platform(DiscordSettings)
        with api_endpoint(options.api_base_url):
            async with client:
                await login(client, options)
                return await sync_commands(tree, guilds=guilds, globally=globally, clear=clear)


def register(app: typer.Typer) -> None:
    """Add ``personabot discord sync`` to ``app``."""
    discord_app = typer.Typer(help="Discord: publish slash commands.", no_args_is_help=True)
    app.add_typer(discord_app, name="discord")

    @discord_app.command("sync")
    def sync_command(
        bot: BotOption = None,
        guild: Annotated[
            Optional[list[str]], typer.Option(help="Publish to this server id (repeatable). Default: the bot file's sync_guilds.")
        ] = None,
        global_: Annotated[bool, typer.Option("--global", help="Publish globally (all servers and DMs; may take a while to show).")] = False,
        clear: Annotated[bool, typer.Option(help="Remove the commands from the targets instead (e.g. old development guilds).")] = False,
        dry_run: Annotated[bool, typer.Option(help="Print the command JSON Discord would receive; no token needed.")] = False,
        verbose: bool = False,
    ) -> None:
        """Publish the slash commands: to servers (instant, for development) or globally."""
        from bots.common import clean_errors, load_settings, run_async, setup_logging

        setup_logging(verbose)
        with clean_errors():
            settings = load_settings(bot)
            guilds = list(guild or ([] if global_ else settings.platform(DiscordSettings).sync_guilds))
            for guild_id in guilds:
                if not (guild_id.isascii() and guild_id.isdigit()):
                    raise ConfigError(f"--guild {guild_id!r}: expected a server id (digits)")
        globally = global_ or not guilds
        result = run_async(lambda: sync(settings, guilds=guilds, globally=globally, clear=clear, dry_run=dry_run))
        if dry_run:
            typer.echo(json.dumps(result["commands"], indent=2, ensure_ascii=False))
            return
        for target, count in result.items():
            typer.echo(f"{target}: {count} commands" + (" (cleared)" if clear else ""))
