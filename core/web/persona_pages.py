"""Personas: list, view, edit (form or TOML), preview, and the bot/chat/server default.

A valid edit replaces the persona in the bot's live library (the next reply uses it),
in the store's persona table, and, when the bot file names persona folders, in a file
``NAME.toml`` in the last of them (later folders win at load), so it survives a
restart. An invalid edit changes nothing and the form shows each problem by field.
Defaults are the settings ``/admin persona-default`` writes.
"""

from __future__ import annotations

from aiohttp import web

from core.errors import ConfigError, NotFound
from core.personas import Persona
from core.web.console import CONSOLE, Console
from core.web.persona_edit import FORM_FIELDS, persona_from_form, persona_from_toml, persona_toml

SCOPES = ("bot", "chat", "server")


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _persona(console: Console, request: web.Request) -> Persona:
    name = request.match_info["name"]
    if name not in console.personas:
        raise NotFound(f"unknown persona {name!r}")
    return console.personas.get(name)


async def personas(request: web.Request) -> web.Response:
    console = _console(request)
    default = await console.store.get_setting("bot", "persona") or console.settings.personas.default
    return console.render(request, "personas.jinja", personas=console.personas.all(), default=default,
                          scopes=SCOPES, error_key="", note="")


def _page(console: Console, request: web.Request, persona: Persona, status: int = 200, *,
          form: dict[str, str] | None = None, toml_text: str | None = None, errors: str = "",
          note: str = "") -> web.Response:
    """The persona page; after a failed edit, the operator's draft (form or TOML) and the errors."""
    values = {key: getattr(persona, key) for key in FORM_FIELDS} | (form or {})
    return console.render(
        request, "persona.jinja", status, persona=persona, values=values, fields=FORM_FIELDS,
        toml_text=persona_toml(persona) if toml_text is None else toml_text,
        errors=errors.splitlines(), note=note, preview=persona.system_text(),
    )


async def persona(request: web.Request) -> web.Response:
    console = _console(request)
    found = _persona(console, request)
    note = request.query.get("note", "")
    return _page(console, request, found, note=note if note in ("persona.saved", "persona.saved_session") else "")


async def save_persona(request: web.Request) -> web.Response:
    console = _console(request)
    current = _persona(console, request)
    form = await request.post()
    fields = {key: str(value) for key, value in form.items()}
    try:
        if fields.get("mode") == "toml":
            edited = persona_from_toml(current.name, fields.get("toml", ""))
        else:
            edited = persona_from_form(current, fields)
    except ConfigError as error:
        await console.audit("persona edit", current.name, "error", problem=str(error)[:500])
        toml_mode = fields.get("mode") == "toml"
        return _page(console, request, current, 400, errors=str(error),
                     form=None if toml_mode else {k: v for k, v in fields.items() if k in FORM_FIELDS},
                     toml_text=fields.get("toml") if toml_mode else None)
    changed = sorted(k for k, v in edited.model_dump().items() if v != current.model_dump()[k])
    kept = _write_file(console, edited)
    console.personas.extend([edited])
    await console.store.upsert_persona(edited.name, edited.model_dump(mode="json"))
    await console.audit("persona edit", edited.name, fields=changed, file=kept or "")
    raise web.HTTPSeeOther(console.url("personas", edited.name, note="persona.saved" if kept else "persona.saved_session"))


def _write_file(console: Console, persona: Persona) -> str | None:
    """Write the persona into the bot's last persona folder; None when it names none."""
    folders = console.settings.personas.dirs
    if not folders:
        return None
    target = console.settings.resolve_path(folders[-1]) / f"{persona.name}.toml"
    temporary = target.with_suffix(".toml.tmp")
    temporary.write_text(persona_toml(persona), encoding="utf-8")
    temporary.replace(target)  # atomic: a crash leaves the old file or the new one
    return str(target)


async def set_default(request: web.Request) -> web.Response:
    console = _console(request)
    form = await request.post()
    name, where, target = (str(form.get(key, "")).strip() for key in ("name", "scope", "target"))
    if name not in console.personas:
        raise NotFound(f"unknown persona {name!r}")
    if where not in SCOPES:
        raise NotFound(f"unknown scope {where!r}")
    if where != "bot" and (":" not in target or target.startswith(":") or target.endswith(":")):
        return console.render(request, "personas.jinja", 400, personas=console.personas.all(),
                              default=await console.store.get_setting("bot", "persona") or console.settings.personas.default,
                              scopes=SCOPES, error_key="target.missing", note="")
    scope = {"bot": "bot", "chat": f"chat:{target}", "server": f"space:{target}"}[where]
    before = await console.store.get_setting(scope, "persona")
    await console.store.set_setting(scope, "persona", name)
    await console.audit("persona default", scope, persona=name, was=before)
    return console.render(request, "personas.jinja", personas=console.personas.all(),
                          default=await console.store.get_setting("bot", "persona") or console.settings.personas.default,
                          scopes=SCOPES, error_key="", note=f"{name} → {scope}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/personas", personas)
    router.add_post("/personas/default", set_default)
    router.add_get("/personas/{name}", persona)
    router.add_post("/personas/{name}", save_persona)
