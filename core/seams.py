"""The declared seams: every place a feature may attach to a bot, as typed attributes.

A feature (safety, personalization, plugins, a third-party one) receives the bot's
:class:`~core.runtime.Runtime` at setup and adds to its ``seams``; nothing else on the
runtime is changed by features. What a bot holds is therefore readable here, without
running any feature:

==================  ======================================================  ===========================
seam                what it takes                                           used by
==================  ======================================================  ===========================
middlewares         ``async mw(ctx, call_next)`` placed in a named stage    recovery, safety, plugins
routes              :class:`~core.dispatcher.Route`, first match wins       plugins' message handlers
commands            :class:`~core.commands.CommandSpec`                     every feature
command_filters     ``async f(ctx, spec)`` before each command              authorization (admin_only)
prompt_contributors ``async f(ctx, persona) -> [PromptSection]``            personalization, plugins
reply_filters       ``async f(ctx, text) -> text`` on every draft and reply safety, plugins
turn_observers      ``async f(ctx, user_turn, reply)`` after a stored turn  personalization
user_data           :class:`UserDataHolder` (export / forget one user)      plugins
catalog_sources     ``() -> [CatalogItem]`` for /recommend                  plugins
generator_wrappers  ``(Generator) -> Generator``, applied once at start     safety (generation cap)
personas            extra :class:`~core.personas.Persona` objects           plugins
admin_policies      platform -> ``(event) -> bool``                         each adapter
chat_admin_policies platform -> ``(event) -> bool``: the event chat's admins  Telegram (group admins)
outboxes            platform -> :class:`~core.ports.Outbox` for jobs        adapters (jobs post there)
services            features' public service objects, typed                 personalization, plugins
tools               :class:`~core.tools.spec.Tool` the model may call          tools feature, plugins, MCP
==================  ======================================================  ===========================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.commands import CommandRegistry, CommandSpec
from core.dispatcher import Context, Middleware, Router
from core.errors import ConfigError
from core.events import IncomingMessage
from core.personas import Persona
from core.ports import Generator, Outbox
from core.prompt import PromptSection
from core.catalog import CatalogItem
from core.records import StoredMessage
from core.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from core.services import PersonalizationService, PluginService

STAGES: tuple[str, ...] = ("recovery", "access", "limits", "input", "moderation", "feature")
"""Middleware stages, outermost first. Within a stage, registration order unless
``before``/``after`` name another middleware of the same stage."""

CommandFilter = Callable[[Context, CommandSpec], Awaitable[None]]
PromptContributor = Callable[[Context, Persona], Awaitable[list[PromptSection]]]
ReplyFilter = Callable[[Context, str], Awaitable[str]]
TurnObserver = Callable[[Context, StoredMessage, str], Awaitable[None]]
CatalogSource = Callable[[], list[CatalogItem]]
GeneratorWrapper = Callable[[Generator], Generator]
AdminPolicy = Callable[[IncomingMessage], bool]


class UserDataHolder(Protocol):
    """A feature that keeps data about users: /export includes it, /forget deletes it."""

    name: str  # the key of its part in an export

    async def export_user(self, user_id: str) -> Any: ...

    async def forget_user(self, user_id: str) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class Placement:
    stage: str
    name: str
    middleware: Middleware
    before: str | None = None
    after: str | None = None


class MiddlewareChain:
    """Middlewares by named stage. Anchors and stages are checked when the chain is built."""

    def __init__(self) -> None:
        self._placed: list[Placement] = []

    def add(
        self, stage: str, name: str, middleware: Middleware, *, before: str | None = None, after: str | None = None
    ) -> None:
        if stage not in STAGES:
            raise ConfigError(f"middleware {name!r}: unknown stage {stage!r} (stages: {', '.join(STAGES)})")
        if any(placed.name == name for placed in self._placed):
            raise ConfigError(f"middleware {name!r} is registered twice")
        self._placed.append(Placement(stage, name, middleware, before, after))

    def replace(self, name: str, middleware: Middleware) -> None:
        """Swap the middleware registered as ``name`` (it keeps its place)."""
        for index, placed in enumerate(self._placed):
            if placed.name == name:
                self._placed[index] = Placement(placed.stage, name, middleware, placed.before, placed.after)
                return
        raise ConfigError(f"no middleware named {name!r} to replace (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return [placed.name for placed in self._placed]

    def resolve(self) -> list[Placement]:
        """The chain, outermost first. ConfigError for an anchor that names no middleware of its stage."""
        ordered: list[Placement] = []
        for stage in STAGES:
            members = [placed for placed in self._placed if placed.stage == stage]
            names = {placed.name for placed in members}
            line: list[Placement] = [placed for placed in members if not (placed.before or placed.after)]
            pending = [placed for placed in members if placed.before or placed.after]
            for placed in pending:
                anchor = placed.before or placed.after
                if anchor not in names:
                    where = "anywhere" if not any(p.name == anchor for p in self._placed) else f"in stage {stage!r}"
                    raise ConfigError(f"middleware {placed.name!r}: anchor {anchor!r} is not a middleware {where}")
            while pending:
                progressed = False
                for placed in list(pending):
                    anchor = placed.before or placed.after
                    index = next((i for i, p in enumerate(line) if p.name == anchor), None)
                    if index is None:
                        continue
                    line.insert(index if placed.before else index + 1, placed)
                    pending.remove(placed)
                    progressed = True
                if not progressed:
                    raise ConfigError(f"middlewares {[p.name for p in pending]} anchor on each other in a circle")
            ordered += line
        return ordered

    def describe(self) -> list[str]:
        return [f"{placed.stage}:{placed.name}" for placed in self.resolve()]


class OutboxRegistry:
    """Per platform, the Outbox that posts to any chat by id (adapters register theirs once connected)."""

    def __init__(self) -> None:
        self._outboxes: dict[str, Outbox] = {}
        self._listeners: list[Callable[[str], None]] = []

    def register(self, platform: str, outbox: Outbox) -> None:
        self._outboxes[platform] = outbox
        for listener in self._listeners:
            listener(platform)

    def get(self, platform: str) -> Outbox | None:
        return self._outboxes.get(platform)

    def platforms(self) -> list[str]:
        return sorted(self._outboxes)

    def on_register(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)


@dataclass
class Services:
    """Public service objects that features publish for others (typed; None when off)."""

    personalization: "PersonalizationService | None" = None
    plugins: "PluginService | None" = None


@dataclass
class Seams:
    middlewares: MiddlewareChain = field(default_factory=MiddlewareChain)
    routes: Router = field(default_factory=Router)
    commands: CommandRegistry = field(default_factory=CommandRegistry)
    command_filters: list[CommandFilter] = field(default_factory=list)
    prompt_contributors: list[PromptContributor] = field(default_factory=list)
    reply_filters: list[ReplyFilter] = field(default_factory=list)
    turn_observers: list[TurnObserver] = field(default_factory=list)
    user_data: list[UserDataHolder] = field(default_factory=list)
    catalog_sources: list[CatalogSource] = field(default_factory=list)
    generator_wrappers: list[GeneratorWrapper] = field(default_factory=list)
    personas: list[Persona] = field(default_factory=list)
    admin_policies: dict[str, AdminPolicy] = field(default_factory=dict)
    # Admins of the event's own chat (a Telegram group's administrators): they may run the
    # commands marked ``chat_admin`` there and switch that chat's persona, nothing bot-wide.
    chat_admin_policies: dict[str, AdminPolicy] = field(default_factory=dict)
    outboxes: OutboxRegistry = field(default_factory=OutboxRegistry)
    services: Services = field(default_factory=Services)
    tools: ToolRegistry = field(default_factory=ToolRegistry)
