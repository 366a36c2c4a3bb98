"""Users: search, one user's page, and the privacy actions on them.

Ban and unban do what ``/admin ban|unban`` do; export and forget are
core.personalization.privacy's (what ``/export``, ``/forget`` and ``personabot users``
run), so the features holding user data (plugins) take part; deleting a memory covers the
user's linked identities as ``/memory forget`` does. Each action is audited as the web
operator with what it changed.
"""

from __future__ import annotations

from aiohttp import web

from core.errors import NotFound, PluginError
from core.events import UserRef
from core.personalization.privacy import export_json, export_user_data
from core.web.console import CONSOLE, Console

USERS_PAGE = 50
NOTES = frozenset({"ban.done", "unban.done", "memory.deleted", "memory.missing"})  # shown after an action


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _uid(request: web.Request) -> str:
    raw = request.match_info["uid"]
    try:
        return UserRef.parse(raw).qualified
    except ValueError:
        raise NotFound(f"bad user id {raw!r}", user_message=raw) from None


def _back(console: Console, uid: str, note: str = "", **values: object) -> web.HTTPSeeOther:
    """Back to the user's page with a note (the key of a message, shown once)."""
    return web.HTTPSeeOther(console.url("users", uid, note=note, **values))  # type: ignore[arg-type]


async def users(request: web.Request) -> web.Response:
    console = _console(request)
    query = request.query.get("q", "").strip()
    raw_offset = request.query.get("offset", "0")
    offset = int(raw_offset) if raw_offset.isdigit() and len(raw_offset) < 9 else 0
    found = await console.store.find_users(query, limit=USERS_PAGE, offset=offset)
    more = offset + USERS_PAGE if len(found) == USERS_PAGE else None
    return console.render(request, "users.jinja", found=found, q=query, more=more)


async def user(request: web.Request) -> web.Response:
    console = _console(request)
    uid = _uid(request)
    store = console.store
    record = await store.get_user(uid)
    profile = await store.get_profile(uid)
    memories = await store.memories(uid)
    linked = [other for other in await store.linked_identities(uid) if other != uid]
    conversations = await store.find_conversations(user=uid, limit=20)
    banned = await store.is_banned(uid)
    note = request.query.get("note", "")
    note = note if note in NOTES else ""
    return console.render(
        request, "user.jinja", uid=uid, record=record, profile=profile, memories=memories, linked=linked,
        conversations=conversations, banned=banned, note=note, note_values=dict(request.query),
    )


async def ban(request: web.Request) -> web.Response:
    console = _console(request)
    uid = _uid(request)
    before = await console.store.is_banned(uid)
    await console.store.set_banned(uid, True)
    await console.audit("ban", uid, banned=True, was_banned=before)
    raise _back(console, uid, "ban.done")


async def unban(request: web.Request) -> web.Response:
    console = _console(request)
    uid = _uid(request)
    before = await console.store.is_banned(uid)
    await console.store.set_banned(uid, False)
    await console.audit("unban", uid, banned=False, was_banned=before)
    raise _back(console, uid, "unban.done")


async def export(request: web.Request) -> web.Response:
    console = _console(request)
    uid = _uid(request)
    data = await export_user_data(console.store, uid, console.holders)
    await console.audit("export user", uid, identities=len(data["identities"]))
    return web.Response(
        body=export_json(data),
        content_type="application/json",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="export.json"'},
    )


async def forget_form(request: web.Request) -> web.Response:
    console = _console(request)
    uid = _uid(request)
    linked = [other for other in await console.store.linked_identities(uid) if other != uid]
    return console.render(request, "forget.jinja", uid=uid, linked=linked, error_key="")


async def forget(request: web.Request) -> web.Response:
    console = _console(request)
    uid = _uid(request)
    form = await request.post()
    if str(form.get("confirm", "")).strip() != uid:
        linked = [other for other in await console.store.linked_identities(uid) if other != uid]
        return console.render(request, "forget.jinja", 400, uid=uid, linked=linked, error_key="forget.mismatch")
    # Audited as the web operator by privacy.forget_user_data, with counts and without the id.
    try:
        ids, rows = await console.forget(uid)
    except PluginError as error:  # the core data is gone; what is left of the plugins' is named
        return console.render(request, "error.jinja", 500, message_key="forget.incomplete", detail=str(error))
    return console.render(request, "forgotten.jinja", count=len(ids), rows=sum(rows.values()))


async def delete_memory(request: web.Request) -> web.Response:
    console = _console(request)
    uid = _uid(request)
    raw = request.match_info["mid"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"bad memory id {raw!r}")
    deleted = False
    for identity in await console.store.linked_identities(uid):
        deleted = await console.store.delete_memory(identity, int(raw)) or deleted
    await console.audit("delete memory", uid, "ok" if deleted else "error", memory=int(raw))
    raise _back(console, uid, "memory.deleted" if deleted else "memory.missing", id=raw)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/users", users)
    router.add_get("/users/{uid}", user)
    router.add_post("/users/{uid}/ban", ban)
    router.add_post("/users/{uid}/unban", unban)
    router.add_post("/users/{uid}/export", export)
    router.add_get("/users/{uid}/forget", forget_form)
    router.add_post("/users/{uid}/forget", forget)
    router.add_post("/users/{uid}/memories/{mid}/delete", delete_memory)
