"""Sign-in, the dashboard, conversations, moderation and audit, plugins and settings."""

from __future__ import annotations

import dataclasses
import json
import logging

from aiohttp import web

from core.errors import NotFound
from core.tools.trace import traces_of
from core.web.console import CONSOLE, Console, client_address
from core.web.auth import COOKIE, redeem_link_token, same_secret
from core.web.i18n import LANG_COOKIE, LANGUAGES
from core.web.live import dashboard

log = logging.getLogger(__name__)

CONVERSATIONS_PAGE = 50
TURNS_PAGE = 100
AUDIT_PAGE = 50
EXPORT_CHUNK = 1000


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def local_next(console: Console, value: object) -> str:
    """A redirect target inside the console, never elsewhere (no open redirect)."""
    text = value if isinstance(value, str) else ""
    inside = text.startswith(console.prefix + "/") and not text.startswith("//") and "\\" not in text
    return text if inside and "\n" not in text and "\r" not in text else console.url() + "/"


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPBadRequest(text=f"{name} must be a number")
    return int(raw)


# -- signing in and out ---------------------------------------------------------------------


def _signed_in(console: Console, request: web.Request, target: str) -> web.Response:
    session = console.sessions.start()
    response = web.HTTPSeeOther(local_next(console, target))
    response.set_cookie(
        COOKIE, session.id, max_age=int(console.web.session_ttl_s), path=console.prefix,
        httponly=True, samesite="Strict", secure=request.secure,
    )
    return response


def _limited(console: Console, request: web.Request, template: str, **values: object) -> web.Response | None:
    wait = console.failures.retry_after(client_address(request))
    if not wait:
        return None
    response = console.render(request, template, 429, error_key="signin.limited", seconds=int(wait) + 1, **values)
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


async def signin_form(request: web.Request) -> web.Response:
    console = _console(request)
    return console.render(request, "signin.jinja", token_on=console.token is not None,
                          next=local_next(console, request.query.get("next")), error_key="", seconds=0)


async def signin(request: web.Request) -> web.Response:
    console = _console(request)
    form = await request.post()
    target = local_next(console, form.get("next"))
    values = {"token_on": console.token is not None, "next": target}
    limited = _limited(console, request, "signin.jinja", **values)
    if limited is not None:
        return limited
    if console.token is None:
        return console.render(request, "signin.jinja", 400, error_key="signin.no_token", seconds=0, **values)
    if not same_secret(str(form.get("token", "")), console.token):
        console.failures.failed(client_address(request))
        log.warning("web console: wrong token from %s", client_address(request))
        await console.audit("sign-in", client_address(request), "denied")
        return console.render(request, "signin.jinja", 401, error_key="signin.wrong", seconds=0, **values)
    await console.audit("sign-in", client_address(request), via="token")
    return _signed_in(console, request, target)


async def link_form(request: web.Request) -> web.Response:
    return _console(request).render(request, "link.jinja", link_token=request.query.get("t", ""), error_key="",
                                    seconds=0)


async def link_signin(request: web.Request) -> web.Response:
    console = _console(request)
    form = await request.post()
    limited = _limited(console, request, "link.jinja", link_token="")
    if limited is not None:
        return limited
    valid = False
    if console.link_key is not None:
        async with console.link_lock:  # a link works once, even for two requests at the same moment
            valid = await redeem_link_token(console.store, console.link_key, str(form.get("t", "")), console.clock)
    if not valid:
        console.failures.failed(client_address(request))
        await console.audit("sign-in", client_address(request), "denied", via="link")
        return console.render(request, "link.jinja", 401, link_token="", error_key="signin.link_bad", seconds=0)
    await console.audit("sign-in", client_address(request), via="link")
    return _signed_in(console, request, console.url() + "/")


async def signout(request: web.Request) -> web.Response:
    console = _console(request)
    session = console.session_of(request)
    if session is not None:  # the guard let it through, so there is one
        console.sessions.end(session.id)
    await console.audit("sign-out", client_address(request))
    response = web.HTTPSeeOther(console.url("signin"))
    response.del_cookie(COOKIE, path=console.prefix)
    return response


async def language(request: web.Request) -> web.Response:
    console = _console(request)
    code = request.match_info["code"]
    if code not in LANGUAGES:
        raise NotFound(f"unknown language {code!r}")
    response = web.HTTPSeeOther(local_next(console, request.query.get("next")))
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, path=console.prefix, samesite="Strict",
                        httponly=True, secure=request.secure)
    return response


# -- dashboard -------------------------------------------------------------------------------


async def dashboard_page(request: web.Request) -> web.Response:
    console = _console(request)
    figures = await dashboard(console.store, console.clock(), console.live)
    return console.render(request, "dashboard.jinja", d=figures, live_on=console.live is not None)


async def dashboard_fragment(request: web.Request) -> web.Response:
    console = _console(request)
    figures = await dashboard(console.store, console.clock(), console.live, totals=False)
    return console.render(request, "dashboard_figures.jinja", d=figures, live_on=console.live is not None)


async def dashboard_json(request: web.Request) -> web.Response:
    console = _console(request)
    return web.json_response(dataclasses.asdict(await dashboard(console.store, console.clock(), console.live)))


# -- conversations ---------------------------------------------------------------------------


async def conversations(request: web.Request) -> web.Response:
    console = _console(request)
    filters = {name: request.query.get(name, "").strip() for name in ("platform", "chat", "user", "text")}
    found = await console.store.find_conversations(
        **filters, before_id=_int(request, "before"), limit=CONVERSATIONS_PAGE
    )
    older = found[-1].conversation.id if len(found) == CONVERSATIONS_PAGE else None
    return console.render(request, "conversations.jinja", found=found, filters=filters, older=older)


async def _summary(console: Console, request: web.Request):  # type: ignore[no-untyped-def]
    raw = request.match_info["cid"]
    summary = await console.store.conversation_summary(int(raw)) if raw.isdigit() and len(raw) < 18 else None
    if summary is None:
        raise NotFound(f"no conversation {raw!r}")
    return summary


async def conversation(request: web.Request) -> web.Response:
    console = _console(request)
    summary = await _summary(console, request)
    total = summary.message_count
    if request.query.get("page") == "last":  # the newest turns: Store.history is that page
        turns = await console.store.history(summary.conversation.id, limit=TURNS_PAGE)
        after, shown_before = 1, total - len(turns)
    else:
        after, shown_before = _int(request, "after") or 0, _int(request, "n") or 0
        turns = await console.store.conversation_turns(summary.conversation.id, after_id=after, limit=TURNS_PAGE)
    shown = shown_before + len(turns)
    more = turns[-1].id if len(turns) == TURNS_PAGE and shown < total else None
    return console.render(
        request, "conversation.jinja", s=summary, turns=turns, first=shown_before + 1, last=shown, more=more,
        paged=after > 0, at_end=shown >= total, tools=await traces_of(console.store, turns),
    )


async def conversation_export(request: web.Request) -> web.Response:
    console = _console(request)
    summary = await _summary(console, request)
    turns, after = [], 0
    while True:
        page = await console.store.conversation_turns(summary.conversation.id, after_id=after, limit=EXPORT_CHUNK)
        turns += page
        if len(page) < EXPORT_CHUNK:
            break
        after = page[-1].id
    c = summary.conversation
    data = {
        "conversation": {"id": c.id, "key": c.key, "persona": c.persona, "started_at": c.started_at, "active": c.active},
        "turns": [dataclasses.asdict(turn) for turn in turns],
    }
    traced = await traces_of(console.store, turns)  # a user turn's tool calls and results go with it
    for turn in data["turns"]:
        if turn["id"] in traced:
            turn["tool_calls"] = traced[turn["id"]]
    await console.audit("export conversation", c.key, turns=len(turns))
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"),
        content_type="application/json",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="conversation-{c.id}.json"'},
    )


# -- moderation, audit, plugins, settings ----------------------------------------------------


async def moderation(request: web.Request) -> web.Response:
    console = _console(request)
    entries = await console.store.find_audit(action="moderation", before_id=_int(request, "before"), limit=AUDIT_PAGE)
    older = entries[-1].id if len(entries) == AUDIT_PAGE else None
    return console.render(request, "moderation.jinja", entries=entries, older=older)


async def audit(request: web.Request) -> web.Response:
    console = _console(request)
    filters = {name: request.query.get(name, "").strip() for name in ("actor", "action", "target", "outcome")}
    entries = await console.store.find_audit(**filters, before_id=_int(request, "before"), limit=AUDIT_PAGE)
    older = entries[-1].id if len(entries) == AUDIT_PAGE else None
    return console.render(request, "audit.jinja", entries=entries, filters=filters, older=older)


async def plugins(request: web.Request) -> web.Response:
    console = _console(request)
    statuses = console.plugin_states() or []
    enabled = console.settings.plugins.get("enabled", [])
    return console.render(request, "plugins.jinja", statuses=statuses, enabled=enabled)


async def settings_page(request: web.Request) -> web.Response:
    console = _console(request)
    shown = json.dumps(console.settings.redacted_dump(), indent=2, ensure_ascii=False)
    return console.render(request, "settings.jinja", shown=shown)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/signin", signin_form)
    router.add_post("/signin", signin)
    router.add_get("/link", link_form)
    router.add_post("/link", link_signin)
    router.add_post("/signout", signout)
    router.add_get("/lang/{code}", language)
    router.add_get("/", dashboard_page)
    router.add_get("/fragments/dashboard", dashboard_fragment)
    router.add_get("/api/dashboard", dashboard_json)
    router.add_get("/conversations", conversations)
    router.add_get("/conversations/{cid}", conversation)
    router.add_get("/conversations/{cid}/export.json", conversation_export)
    router.add_get("/moderation", moderation)
    router.add_get("/audit", audit)
    router.add_get("/plugins", plugins)
    router.add_get("/settings", settings_page)
