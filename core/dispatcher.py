"""The Dispatcher: every incoming event passes one visible middleware chain, then a router.

    Dispatcher.feed(event, outbox)
        middlewares, outermost first, by stage (core/seams.py: recovery → access → limits
        → input → moderation → feature)
        router: the first route whose ``matches`` is true handles the event
        on_error: the one error hook; PersonabotError → its user_message, else a log line

Adapters and the console call ``feed`` and nothing else. The :class:`Context` carries
the event, its outbox and per-event state; handlers get the bot's parts by parameter
(they are built with what they need), never through the context.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import PersonabotError
from core.events import IncomingMessage, Reply, SentMessage
from core.i18n import SOURCE_LOCALE, Msg, nt, t
from core.ports import Outbox

log = logging.getLogger(__name__)


@dataclass
class Context:
    """One event on its way through the chain. Middlewares may replace ``event``."""

    event: IncomingMessage
    outbox: Outbox
    notices: list[str] = field(default_factory=list)  # told to the user before the answer
    state: dict[str, Any] = field(default_factory=dict)  # per-event data for later steps
    locale: str = SOURCE_LOCALE  # the reader's language (core/i18n.py), chosen in the access stage

    def t(self, message: str, **kwargs: Any) -> str:
        """``message`` (msgid or Msg) in the reader's language."""
        return t(self.locale, message, **kwargs)

    def nt(self, singular: str, plural: str, n: int, **kwargs: Any) -> str:
        return nt(self.locale, singular, plural, n, **kwargs)

    async def reply(self, answer: Reply | str, *, private: bool = False) -> SentMessage:
        reply = answer if isinstance(answer, Reply) else Reply(answer, private=private)
        if isinstance(reply.text, Msg):
            reply = dataclasses.replace(reply, text=self.t(reply.text))
        if reply.reply_to is None and self.event.message_id:
            reply = dataclasses.replace(reply, reply_to=self.event.message_id)  # keeps the attachment
        return await self.outbox.send(self.event.key, reply)


Handler = Callable[[Context], Awaitable[None]]
Middleware = Callable[[Context, Handler], Awaitable[None]]
ErrorHook = Callable[[Context, BaseException], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    matches: Callable[[Context], bool]
    handle: Handler


class Router:
    """Ordered routes; the first match wins. Plugins insert theirs before ``chat``."""

    def __init__(self, routes: Sequence[Route] = ()) -> None:
        self._routes = list(routes)

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def add(self, route: Route, *, before: str | None = None) -> None:
        names = [existing.name for existing in self._routes]
        if route.name in names:
            raise ValueError(f"route {route.name!r} exists")
        index = names.index(before) if before in names else len(self._routes)
        self._routes.insert(index, route)

    async def __call__(self, ctx: Context) -> None:
        for route in self._routes:
            if route.matches(ctx):
                ctx.state["route"] = route.name
                await route.handle(ctx)
                return


async def reply_with_error(ctx: Context, error: BaseException) -> None:
    """The default error hook: a short answer for the user, a log line for the operator."""
    event = ctx.event
    if isinstance(error, PersonabotError):
        log.info("event %s from %s: %s: %s", event.event_id, event.user, type(error).__name__, error)
        text = ctx.t(error.user_message)
    else:
        log.error("event %s from %s failed", event.event_id, event.user, exc_info=error)
        text = ctx.t(PersonabotError.user_message)
    try:
        await ctx.reply(text, private=True)
    except Exception as exc:  # the platform is down too; the log line above is what is left
        log.warning("could not deliver error notice for %s: %s", event.event_id, exc)


class Dispatcher:
    def __init__(
        self,
        router: Router,
        middlewares: Sequence[tuple[str, Middleware]] = (),
        on_error: ErrorHook = reply_with_error,
        locale: str = SOURCE_LOCALE,
    ) -> None:
        self.router = router
        self.on_error = on_error
        self.locale = locale  # until the access stage knows the reader's (the bot's language)
        self.set_chain(middlewares)

    def set_chain(self, middlewares: Sequence[tuple[str, Middleware]]) -> None:
        """The named middlewares, outermost first (the App sets them once, from the resolved stages)."""
        self._names = [name for name, _ in middlewares]
        self.middlewares = tuple(middleware for _, middleware in middlewares)

    def named_middlewares(self) -> list[tuple[str, Middleware]]:
        return list(zip(self._names, self.middlewares))

    def describe(self) -> list[str]:
        """The chain as names, outermost first (shown by `personabot config show`)."""
        return self._names + [f"route:{route.name}" for route in self.router.routes]

    async def feed(self, event: IncomingMessage, outbox: Outbox) -> Context:
        ctx = Context(event=event, outbox=outbox, locale=self.locale)

        async def run(index: int, current: Context) -> None:
            if index == len(self.middlewares):
                await self.router(current)
            else:
                await self.middlewares[index](current, lambda nxt: run(index + 1, nxt))

        try:
            await run(0, ctx)
        except Exception as error:
            await self.on_error(ctx, error)
        return ctx
