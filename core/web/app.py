"""The console as an aiohttp application: ``create_console(...)`` with explicit dependencies.

It is mounted under ``[web] prefix`` on the process's one HTTP server (core.http, which
is aiohttp: one server, one framework) or on a server of its own for ``personabot web``
(:func:`standalone_app`). It receives what it shows and changes, never the App.

Every response carries a strict Content-Security-Policy (scripts only from the
console's own static folder) on top of Jinja2's autoescaping of every value, so text
from chats, names and memories can never run as code in the operator's browser.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.errors import InputRejected, NotFound
from core.settings import BotSettings
from core.web import pages, persona_pages, user_pages
from core.web.auth import FailureLimiter, Sessions, same_secret
from core.web.console import CONSOLE, HERE, Console, ConsoleParts, templates
from core.web.settings import WebSettings

OPEN_PATHS = ("/signin", "/link", "/static/", "/lang/")  # reachable without a session
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@web.middleware
async def _headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")  # sign-in links must not leak in a Referer
    if not request.path.startswith(request.app[CONSOLE].prefix + "/static/"):
        h.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Readiness, session, CSRF, and the errors every handler may raise, in one place."""
    console = request.app[CONSOLE]
    local = request.path[len(console.prefix):] or "/"
    if console.parts is None and not local.startswith("/static/"):
        raise web.HTTPServiceUnavailable(text="the bot is starting", headers={"Retry-After": "5"})
    session = console.session_of(request)
    if not local.startswith(OPEN_PATHS):
        if session is None:
            if request.method == "GET" and not local.startswith("/api/"):
                raise web.HTTPSeeOther(console.url("signin", next=request.path_qs))
            raise web.HTTPUnauthorized(text="sign in first", content_type="text/plain")
        if request.method not in ("GET", "HEAD"):
            form = await request.post()
            given = str(form.get("csrf") or request.headers.get("X-CSRF-Token") or "")
            if not same_secret(given, session.csrf):
                return console.render(request, "error.jinja", 403, message_key="forbidden", detail="")
    try:
        return await handler(request)
    except NotFound as exc:
        return console.render(request, "error.jinja", 404, message_key="not_found", detail=exc.user_message or "")
    except InputRejected as exc:
        return console.render(request, "error.jinja", 400, message_key="bad_request", detail=str(exc))


def create_console(
    *,
    settings: BotSettings,
    web_settings: WebSettings,
    token: str | None,
    link_key: bytes | None = None,
    parts: ConsoleParts | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The console's routes, to mount under ``web_settings.prefix`` (see :func:`mount`).

    ``token`` None turns token sign-in off, ``link_key`` None one-time links. Without
    ``parts`` every page answers 503 until :func:`attach` gives them: core.http's
    server must have its sub-applications before it starts, and it starts before the
    bot's store and model are open.
    """
    app = web.Application(middlewares=[_headers, _guard])
    app[CONSOLE] = Console(
        settings=settings,
        web=web_settings,
        token=token or None,
        link_key=link_key,
        parts=parts,
        clock=clock,
        sessions=Sessions(web_settings.session_ttl_s, clock),
        failures=FailureLimiter(web_settings.max_failures, web_settings.failure_window_s),
        templates=templates(),
    )
    app.router.add_static("/static", HERE / "static", name="static")
    pages.add_routes(app.router)
    user_pages.add_routes(app.router)
    persona_pages.add_routes(app.router)
    return app


def attach(console: web.Application, parts: ConsoleParts | None) -> None:
    """Give a console its parts once the bot is open (None again when it closes)."""
    console[CONSOLE].parts = parts


def mount(parent: web.Application, console: web.Application) -> None:
    """Put the console under its prefix on ``parent`` (core.http's server, or a bare one)."""
    parent.add_subapp(console[CONSOLE].prefix, console)


def standalone_app(console: web.Application) -> web.Application:
    """A server of its own (``personabot web``): the console, and ``/`` sending there."""
    root = web.Application()
    prefix = console[CONSOLE].prefix

    async def home(request: web.Request) -> web.Response:
        raise web.HTTPFound(prefix + "/")

    root.router.add_get("/", home)
    mount(root, console)
    return root
