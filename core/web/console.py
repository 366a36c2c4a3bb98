"""The state one mounted console shares with its handlers, and how pages are rendered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from core.personalization.privacy import forget_user_data
from core.personas import PersonaLibrary
from core.ports import Store
from core.settings import BotSettings
from core.web.auth import COOKIE, FailureLimiter, Session, Sessions
from core.web.i18n import LANG_COOKIE, pick_language, translator
from core.web.live import LiveSource
from core.web.settings import WebSettings

if TYPE_CHECKING:
    from core.plugins.manager import PluginStatus
    from core.seams import UserDataHolder
    from core.services import PersonalizationService

HERE = Path(__file__).resolve().parent
WEB_ACTOR = "web:operator"  # who console actions are audited as


@dataclass(frozen=True, slots=True)
class ConsoleParts:
    """What the console reads and changes.

    ``live`` None: not inside the serving process (the dashboard says so). ``holders``:
    the features that keep user data (the ``user_data`` seam), exported and forgotten
    with a user. ``plugin_states``: the plugins' state and commands, when they are loaded.
    ``personalization``: the running bot's service, whose forget also stops the user's
    replies in flight; without it forget is core.personalization.privacy's.
    """

    store: Store
    personas: PersonaLibrary
    live: LiveSource | None = None
    holders: "Sequence[UserDataHolder]" = ()
    plugin_states: "Callable[[], Sequence[PluginStatus]] | None" = None
    personalization: "PersonalizationService | None" = None  # in a running bot: its forget stops replies in flight


@dataclass
class Console:
    """Everything the handlers use; one per mounted console."""

    settings: BotSettings
    web: WebSettings
    token: str | None
    link_key: bytes | None  # signs sign-in links (auth.link_key); None: links are off
    clock: Callable[[], float]
    sessions: Sessions
    failures: FailureLimiter
    templates: jinja2.Environment
    link_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    parts: ConsoleParts | None = None  # None until the bot is open (the server starts first)

    def _parts(self) -> ConsoleParts:
        if self.parts is None:
            raise web.HTTPServiceUnavailable(text="the bot is starting", headers={"Retry-After": "5"})
        return self.parts

    @property
    def store(self) -> Store:
        return self._parts().store

    @property
    def personas(self) -> PersonaLibrary:
        return self._parts().personas

    @property
    def live(self) -> LiveSource | None:
        return self._parts().live

    @property
    def holders(self) -> "Sequence[UserDataHolder]":
        return self._parts().holders

    async def forget(self, user_id: str) -> tuple[list[str], dict[str, int]]:
        """What /forget does, audited as the web operator."""
        parts = self._parts()
        if parts.personalization is not None:
            return await parts.personalization.forget(user_id, actor=WEB_ACTOR)
        return await forget_user_data(parts.store, user_id, actor=WEB_ACTOR, holders=parts.holders)

    def plugin_states(self) -> "Sequence[PluginStatus] | None":
        states = self._parts().plugin_states
        return None if states is None else states()

    @property
    def prefix(self) -> str:
        return self.web.prefix

    def url(self, *parts: str, **query: str | int | None) -> str:
        """``prefix/part/part?query`` with every part quoted (user ids hold ``:``)."""
        path = self.prefix + "".join("/" + quote(str(part), safe="") for part in parts)
        pairs = [f"{quote(k)}={quote(str(v), safe='')}" for k, v in query.items() if v not in (None, "")]
        return path + ("?" + "&".join(pairs) if pairs else "")

    def render(self, request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
        language = language_of(request)
        session = self.session_of(request)
        page = self.templates.get_template(name).render(
            t=translator(language),
            lang=language,
            url=self.url,
            prefix=self.prefix,
            session=session,
            csrf=session.csrf if session else "",
            here=request.path_qs,
            bot=self.settings.name,
            **values,
        )
        return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")

    def session_of(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    async def audit(self, action: str, target: str = "", outcome: str = "ok", **detail: Any) -> None:
        await self.store.audit(WEB_ACTOR, f"web {action}", target, outcome, detail)


CONSOLE = web.AppKey("console", Console)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value, whatever the template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, seconds=_seconds)
    return env


def language_of(request: web.Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"))


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"
