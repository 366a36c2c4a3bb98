"""Building the console from a bot file, and serving it on a port of its own.

``personabot run`` mounts the console on core.http's server when ``[http]`` is on and
otherwise serves it with :class:`ConsoleServer`, as ``personabot web`` does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web

from core.errors import ConfigError
from core.settings import BotSettings
from core.web.app import create_console, standalone_app
from core.web.auth import link_key
from core.web.console import CONSOLE, ConsoleParts

log = logging.getLogger(__name__)


def link_key_path(settings: BotSettings) -> Path:
    """Beside the database: whoever can read the database can sign in anyway."""
    return settings.database_path().with_suffix(".console-key")


def console_for(settings: BotSettings, parts: ConsoleParts | None = None) -> web.Application:
    """The bot's console: the admin token from ``[web] token_env``, links signed by the key file."""
    env = settings.web.token_env
    token = os.environ.get(env) if env else None
    if not token:
        log.warning(
            "web console: %s is not set, so token sign-in is off; sign in with a link from "
            "`personabot web link --bot FILE`", env or "[web] token_env",
        )
    return create_console(
        settings=settings, web_settings=settings.web, token=token, link_key=link_key(link_key_path(settings)),
        parts=parts,
    )


class ConsoleServer:
    """``async with ConsoleServer(console, host, port) as server:`` serves at ``server.url``."""

    def __init__(self, console: web.Application, host: str, port: int) -> None:
        self.console, self.host, self.port = console, host, port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.console[CONSOLE].prefix}/"

    async def __aenter__(self) -> "ConsoleServer":
        runner = web.AppRunner(standalone_app(self.console), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise ConfigError(f"web.port: cannot listen on {self.host}:{self.port}: {error.strerror or error}") from None
        self._runner = runner
        sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1] if sockets else self.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
