"""``personabot web --bot FILE`` (the console on the bot's database, no adapters, no model)
and ``personabot web link --bot FILE`` (a one-time sign-in link). docs/console.md.

A SQLite database is held by one process: while ``personabot run`` serves the bot,
use its own console (``[web] enabled = true``); ``personabot web link`` works either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from bots.common import BotOption, bot_file


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contextlib.contextmanager
def _clean_errors() -> Iterator[None]:
    from core.errors import ConfigError, PersonabotError

    try:
        yield
    except ConfigError as error:
        raise _fail(str(error), 2) from None
    except PersonabotError as error:
        raise _fail(str(error), 1) from None


def register(app: typer.Typer) -> None:
    web_app = typer.Typer(help="The operator web console.", invoke_without_command=True)
    app.add_typer(web_app, name="web")

    @web_app.callback()
    def serve(
        ctx: typer.Context,
        bot: BotOption = None,
        host: Annotated[str | None, typer.Option(help="Listen address (default: the bot file's web.host).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default: web.port).")] = None,
    ) -> None:
        """Serve the console on the bot's database until Ctrl+C (no adapters, no model loaded)."""
        if ctx.invoked_subcommand is not None:
            return
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        with _clean_errors():
            asyncio.run(_serve(bot_file(bot), host, port))

    @web_app.command("link")
    def link(bot: BotOption = None) -> None:
        """Print a one-time sign-in link (valid for web.link_ttl_s seconds)."""
        from core.settings import load_bot_settings
        from core.web.auth import link_key, make_link_token
        from core.web.serve import link_key_path

        with _clean_errors():
            settings = load_bot_settings(bot_file(bot))
            token = make_link_token(link_key(link_key_path(settings)), settings.web.link_ttl_s)
        served = settings.http if settings.http.enabled else settings.web  # personabot run mounts it there
        host = f"[{served.host}]" if ":" in served.host else served.host
        typer.echo(f"http://{host}:{served.port}{settings.web.prefix}/link?t={token}")
        typer.echo(f"(works once, for {int(settings.web.link_ttl_s // 60)} minutes)", err=True)


async def _serve(bot: Path, host: str | None, port: int | None) -> None:
    """The bot opened as ``personabot users`` opens it: the store, the personas and the
    plugins' export and forget hooks; a scripted generator, so no model loads."""
    from bots.app_factory import bot_app
    from core.errors import ConfigError
    from core.generation.scripted import ScriptedGenerator
    from core.plugins.feature import setup_plugin_privacy
    from core.settings import load_bot_settings
    from core.web.console import ConsoleParts
    from core.web.serve import ConsoleServer, console_for

    settings = load_bot_settings(bot)
    path = settings.database_path()
    if not path.is_file():
        raise ConfigError(f"{bot}: no database at {path} (has this bot run yet?)")
    app = bot_app(settings, generator=ScriptedGenerator([""]), features=[setup_plugin_privacy])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with app as running:
        parts = ConsoleParts(running.store, running.personas, live=None, holders=running.seams.user_data)
        console = console_for(settings, parts)
        async with ConsoleServer(console, host or settings.web.host, settings.web.port if port is None else port) as server:
            typer.echo(f"console: {server.url}  (Ctrl+C to stop)", err=True)
            await stop.wait()
