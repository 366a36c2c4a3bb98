"""Building the console from a bot file, and serving it on a port of its own.

``personabot run`` uses :class:`RunConsole`: mounted on core.http's server when
``[http]`` is on, otherwise served by a :class:`ConsoleServer`, as ``personabot web`` is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.errors import ConfigError
from core.settings import BotSettings
from core.web.app import attach, create_console, standalone_app
from core.web.auth import link_key
from core.web.console import CONSOLE, ConsoleParts
from core.web.live import MetricsLive

if TYPE_CHECKING:
    from core.runtime import Runtime

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


class RunConsole:
    """The console of ``personabot run``.

        console = RunConsole(settings, server=operator.server)   # before the server starts
        async with console:                                      # own port when no server
            async with app as running:
                console.attach(running, metrics=operator.metrics, health=operator.health)
    """

    def __init__(self, settings: BotSettings, server: Any | None = None) -> None:
        self.app = console_for(settings)  # answers 503 until attach
        self._own: ConsoleServer | None = None
        if server is not None:
            server.mount(settings.web.prefix, self.app)  # core.http.server.HttpServer
        else:
            self._own = ConsoleServer(self.app, settings.web.host, settings.web.port)

    async def __aenter__(self) -> "RunConsole":
        if self._own is not None:
            await self._own.__aenter__()
            log.info("web console on %s", self._own.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        attach(self.app, None)
        if self._own is not None:
            await self._own.__aexit__(*exc)

    def attach(self, running: "Runtime", metrics: Any | None = None, health: Any | None = None) -> None:
        """Serve ``running``: its store, personas, user-data holders, plugins and live figures."""
        plugins = running.services.plugins
        live = MetricsLive(
            None if metrics is None else metrics.registry,
            readiness=None if health is None else health.problems,
            model_health=running.generator.health,
        )
        attach(self.app, ConsoleParts(
            running.store, running.personas, live=live, holders=tuple(running.seams.user_data),
            plugin_states=None if plugins is None else plugins.describe,
            personalization=running.services.personalization,
        ))
