"""One aiohttp server per process: /healthz, /readyz, /metrics, and what others mount.

    server = HttpServer(settings.http, metrics, health)
    server.mount("/console", console_app)        # a sub-application (before start)
    await server.start()                         # /healthz answers while the model loads
    server.add_route("POST", "/telegram", hook)  # also after start (the Telegram webhook)
    ...
    await server.stop()

aiohttp because discord.py already brings it and the Telegram webhook used it before;
one server means one port to open, probe and scrape. Sub-applications (the web
console) must be mounted before ``start`` (aiohttp freezes its router then); plain
routes live in a table the server consults after its own routes and sub-applications,
so an adapter that starts after the server can still add (and remove) one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.errors import ConfigError
from core.http.health import Health
from core.http.metrics import CONTENT_TYPE, Metrics
from core.http.settings import HttpSettings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OWN_PATHS = ("/healthz", "/readyz", "/metrics")


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False), status=status, content_type="application/json", charset="utf-8"
    )


class HttpServer:
    def __init__(self, settings: HttpSettings, metrics: Metrics, health: Health) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self._routes: dict[tuple[str, str], Handler] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port once started (settings.port may be 0)

    # -- what others add -----------------------------------------------------------
    def mount(self, prefix: str, subapp: web.Application) -> None:
        """Serve ``subapp`` under ``prefix`` (e.g. the web console at ``/console``); before start."""
        if self._runner is not None:
            raise RuntimeError("mount sub-applications before the server starts")
        self._check_path(prefix)
        self.app.add_subapp(prefix, subapp)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler``; before or after start."""
        self._check_path(path)
        key = (method.upper(), path)
        if key in self._routes:
            raise ValueError(f"{method} {path} is already served")
        self._routes[key] = handler

    def remove_route(self, method: str, path: str) -> None:
        """Stop serving a route (an adapter that stops); an unknown one is ignored."""
        self._routes.pop((method.upper(), path), None)

    def _check_path(self, path: str) -> None:
        if not path.startswith("/") or path.rstrip("/") in OWN_PATHS:
            raise ValueError(f"{path!r}: a path must start with '/' and not be one of {', '.join(OWN_PATHS)}")

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise ConfigError(
                f"http.port: cannot listen on {self.settings.host}:{self.settings.port}: {error.strerror or error}"
            ) from None
        self._runner = runner
        sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        log.info("operator endpoints on http://%s:%s (/healthz /readyz /metrics)", self.settings.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "HttpServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- handlers ------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = await self.health.problems()
        if problems:
            return _json({"status": "unready", "reasons": problems}, status=503)
        return _json({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        handler = self._routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        if any(path == request.path for _, path in self._routes):
            raise web.HTTPMethodNotAllowed(request.method, sorted(m for m, p in self._routes if p == request.path))
        raise web.HTTPNotFound()
