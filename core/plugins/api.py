"""What a plugin module exposes: one :class:`Plugin` object that declares its parts.

    plugin = Plugin("hello", description="Says hello", config=HelloConfig)

    @plugin.command("hello", "Say hello")
    async def hello(turn: Turn) -> str:
        return turn.plugin.config.greeting

Declarations are data, read without running the plugin: the loader checks command
clashes and the privacy contract, and `personabot plugins list` shows commands,
before any setup code runs. Handlers receive a :class:`Turn` (one message, as the
plugin may see it) or a :class:`~core.plugins.context.PluginContext` (the plugin's
narrow view of the bot), never the App.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from core.commands import ArgSpec, CommandSpec
from core.errors import ConfigError
from core.events import ConversationKey, IncomingMessage, Reply, SentMessage, UserRef
from core.personas import Persona, load_persona_file
from core.records import ScheduledJob
from core.seams import STAGES
from core.tools.spec import Tool, make_tool

if TYPE_CHECKING:
    from core.dispatcher import Context
    from core.plugins.context import PluginContext
    from core.prompt import PromptSection

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESERVED_NAMES = frozenset({"core", "enabled", "paths"})  # keys of the [plugins] section itself

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class PluginMiddleware:
    """A plugin's middleware and where it asks to be placed (checked when the plugin loads)."""

    handler: "MiddlewareFn"
    stage: str = "feature"
    before: str | None = None
    after: str | None = None

    @property
    def name(self) -> str:
        return self.handler.__name__


class Flow(enum.Enum):
    CONTINUE = "continue"


CONTINUE = Flow.CONTINUE
"""Returned by a message handler: "not for me after all", routing goes on (usually to chat)."""


# --- triggers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    """When a message handler runs. ``test`` sees the event; a regex match is kept for the handler."""

    kind: str  # "keyword" | "regex" | "predicate"
    description: str
    test: Callable[[IncomingMessage], "re.Match[str] | bool | None"]


def _unspaced(char: str) -> bool:
    """Scripts written without spaces between words: no word boundary is required there."""
    try:
        name = unicodedata.name(char)
    except ValueError:
        return False
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "IDEOGRAPHIC"))


def _keyword_pattern(word: str) -> str:
    left = "" if _unspaced(word[0]) else r"(?<!\w)"
    right = "" if _unspaced(word[-1]) else r"(?!\w)"
    return left + re.escape(word) + right


def keyword(*words: str) -> Trigger:
    """Any of ``words`` as a whole word, case-insensitive (inside a sentence in Chinese or Japanese)."""
    cleaned = [unicodedata.normalize("NFC", word.strip()).casefold() for word in words if word.strip()]
    if not cleaned:
        raise ConfigError("keyword trigger: give at least one non-empty word")
    pattern = re.compile("|".join(_keyword_pattern(word) for word in cleaned))
    return Trigger("keyword", f"keyword {', '.join(cleaned)}", lambda event: pattern.search(event.text.casefold()))


def regex(pattern: str | re.Pattern[str], flags: int = re.IGNORECASE) -> Trigger:
    """``re.search`` on the message text; the handler gets the match as ``turn.match``."""
    try:
        compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
    except re.error as exc:
        raise ConfigError(f"regex trigger {pattern!r}: {exc}") from None
    return Trigger("regex", f"regex {compiled.pattern}", lambda event: compiled.search(event.text))


def predicate(test: Callable[[IncomingMessage], bool], description: str = "") -> Trigger:
    """Any synchronous test of the event. For checks that need storage, return CONTINUE from the handler."""
    return Trigger("predicate", description or getattr(test, "__name__", "predicate"), test)


# --- what a plugin declares ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageHandler:
    name: str
    trigger: Trigger
    handler: Callable[["Turn"], Awaitable[Any]]
    unaddressed: bool  # also group messages that do not mention the bot


Job = ScheduledJob
"""A scheduled call of a plugin's job handler, as stored (``job.payload`` is the plugin's JSON)."""


CommandFn = Callable[["Turn"], Awaitable["Reply | str | None"]]
JobFn = Callable[["PluginContext", Job], Awaitable["float | None"]]
MiddlewareFn = Callable[["Turn", Callable[[], Awaitable[None]]], Awaitable[None]]
ContributorFn = Callable[["Turn", Persona], Awaitable["Iterable[PromptSection | str]"]]
ReplyFilterFn = Callable[["Turn", str], Awaitable[str]]
LifecycleFn = Callable[["PluginContext"], Awaitable[None]]
ExportFn = Callable[["PluginContext", str], Awaitable[Any]]
ForgetFn = Callable[["PluginContext", str], Awaitable[int]]


class Plugin:
    """The one object a plugin module exposes (module attribute ``plugin``, or the entry point's target).

    ``config``: a pydantic model for the plugin's ``[plugins.NAME]`` section of the bot file.
    ``stores_user_data``: the plugin keeps anything about a user (its user-scoped storage,
    jobs with a ``user``, or its own files); it must then declare ``@plugin.export_user``
    and ``@plugin.forget_user``, or the loader refuses it.
    """

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        version: str = "",
        config: type[BaseModel] | None = None,
        stores_user_data: bool = False,
    ) -> None:
        if not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
            raise ConfigError(
                f"plugin name {name!r}: use 1-32 of a-z, 0-9 and _, starting with a letter"
                f" (not {', '.join(sorted(RESERVED_NAMES))})"
            )
        if config is not None and not (isinstance(config, type) and issubclass(config, BaseModel)):
            raise ConfigError(f"plugin {name}: config must be a pydantic BaseModel class")
        self.name = name
        self.description = description
        self.version = version
        self.config_model = config
        self.stores_user_data = stores_user_data
        self.commands: list[CommandSpec] = []
        self.message_handlers: list[MessageHandler] = []
        self.middlewares: list[PluginMiddleware] = []
        self.jobs: dict[str, JobFn] = {}
        self.contributors: list[ContributorFn] = []
        self.reply_filters: list[ReplyFilterFn] = []
        self.personas: list[Persona] = []
        self.setup_hooks: list[LifecycleFn] = []
        self.teardown_hooks: list[LifecycleFn] = []
        self.exporter: ExportFn | None = None
        self.forgetter: ForgetFn | None = None
        self.tools: list[Tool] = []

    def __repr__(self) -> str:
        return f"Plugin({self.name!r})"

    # registration decorators ------------------------------------------------------------

    def command(
        self,
        name: str,
        description: str,
        *,
        args: Iterable[ArgSpec] = (),
        admin: bool = False,
        private: bool = False,
        uses_model: bool = False,
    ) -> Callable[[CommandFn], CommandFn]:
        """A core command (``/name``; ``/admin name`` with ``admin=True``) that every adapter publishes."""

        def register(handler: CommandFn) -> CommandFn:
            spec = CommandSpec(
                name,
                description,
                handler,  # type: ignore[arg-type]  # the loader wraps it into a core handler
                tuple(args),
                admin_only=admin,
                private=private,
                uses_model=uses_model,
                owner=self.name,
            )
            if any((other.admin_only, other.name) == (admin, name) for other in self.commands):
                raise ConfigError(f"plugin {self.name}: command /{spec.qualified_name} declared twice")
            self.commands.append(spec)
            return handler

        return register

    def tool(
        self,
        name: str,
        description: str,
        *,
        params: type[BaseModel] | None = None,
        admin: bool = False,
        confirm: bool = False,
        groups: bool = True,
        timeout_s: float = 20.0,
        secret_args: tuple[str, ...] = (),
    ) -> Callable[[F], F]:
        """A tool the model may call (docs/tools.md): ``async def run(turn, city: str, days: int = 1)``.

        The JSON schema comes from the type hints after ``turn`` (or from ``params``, a
        pydantic model, passed as the second argument); arguments are validated before the
        handler runs. Return text or JSON-able data: it goes to the model as an untrusted
        tool result. ``admin``: never offered to non-admins; ``confirm``: the user approves
        with /confirm first; ``groups=False``: not in group chats.
        """

        def register(handler: F) -> F:
            declared = make_tool(
                handler, name, description, params=params, admin_only=admin, confirm=confirm, groups_allowed=groups,
                owner=f"plugin:{self.name}", timeout_s=timeout_s, secret_args=secret_args,
            )
            if any(existing.name == name for existing in self.tools):
                raise ConfigError(f"plugin {self.name}: tool {name!r} declared twice")
            self.tools.append(declared)
            return handler

        return register

    def on_message(
        self, trigger: Trigger, *, name: str | None = None, unaddressed: bool = False
    ) -> Callable[[F], F]:
        """A handler for chat messages that match ``trigger``; it answers instead of the model.

        Return CONTINUE to let the message go on to the next handler or the model.
        ``unaddressed=True`` also sees group messages that do not mention the bot.
        """

        def register(handler: F) -> F:
            handler_name = name or handler.__name__
            if any(existing.name == handler_name for existing in self.message_handlers):
                raise ConfigError(f"plugin {self.name}: message handler {handler_name!r} declared twice")
            self.message_handlers.append(MessageHandler(handler_name, trigger, handler, unaddressed))
            return handler

        return register

    def middleware(
        self, handler: F | None = None, *, stage: str = "feature", before: str | None = None, after: str | None = None
    ) -> Any:
        """``async def mw(turn, call_next)``: runs for every event in ``stage`` (core/seams.py
        STAGES; default ``feature``, after the core's own checks), optionally ``before`` or
        ``after`` a named middleware of that stage. ``@plugin.middleware`` or
        ``@plugin.middleware(stage="input", after="input_limits")``."""

        def register(function: F) -> F:
            self.middlewares.append(PluginMiddleware(function, stage, before, after))
            return function

        return register(handler) if handler is not None else register

    def job(self, name: str) -> Callable[[F], F]:
        """A job handler ``async def run(ctx, job)``; schedule it by name with ``ctx.schedule``.

        Return a unix time to run the job again then (calendar-aware repeats), else None.
        """
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"plugin {self.name}: job name {name!r}: use a-z, 0-9 and _")

        def register(handler: F) -> F:
            if name in self.jobs:
                raise ConfigError(f"plugin {self.name}: job {name!r} declared twice")
            self.jobs[name] = handler
            return handler

        return register

    def prompt(self, handler: F) -> F:
        """``async def contribute(turn, persona)`` → sections (str or PromptSection) for this reply.

        Plain strings are untrusted context: they go in a user turn and are dropped first
        when the model's token budget is short.
        """
        self.contributors.append(handler)
        return handler

    def reply_filter(self, handler: F) -> F:
        """``async def edit(turn, text) -> str``: rewrite the model's finished reply (e.g. add citations)."""
        self.reply_filters.append(handler)
        return handler

    def persona(self, source: Persona | str | Path) -> Persona:
        """Add a persona (a Persona, or the path of a persona TOML file)."""
        persona = source if isinstance(source, Persona) else load_persona_file(source)
        if any(existing.name == persona.name for existing in self.personas):
            raise ConfigError(f"plugin {self.name}: persona {persona.name!r} declared twice")
        self.personas.append(persona)
        return persona

    def on_setup(self, handler: F) -> F:
        """``async def setup(ctx)``: runs at bot start; raising disables the plugin, the bot goes on."""
        self.setup_hooks.append(handler)
        return handler

    def on_teardown(self, handler: F) -> F:
        """``async def teardown(ctx)``: runs at bot stop, in reverse order of setup."""
        self.teardown_hooks.append(handler)
        return handler

    def export_user(self, handler: F) -> F:
        """``async def export(ctx, user_id) -> JSON data``: everything the plugin keeps about a user."""
        self.exporter = handler
        return handler

    def forget_user(self, handler: F) -> F:
        """``async def forget(ctx, user_id) -> int``: delete it all; returns how many items went."""
        self.forgetter = handler
        return handler

    # checks -----------------------------------------------------------------------------

    def contract_problems(self) -> list[str]:
        """Why the loader must refuse this plugin (empty when it may load)."""
        problems = []
        if self.stores_user_data and (self.exporter is None or self.forgetter is None):
            problems.append(
                "it stores user data but does not implement both @plugin.export_user and @plugin.forget_user"
            )
        if not self.stores_user_data and (self.exporter or self.forgetter):
            problems.append("it implements export/forget but does not declare stores_user_data=True")
        for middleware in self.middlewares:
            if middleware.stage not in STAGES:
                problems.append(
                    f"middleware {middleware.name} names an unknown stage {middleware.stage!r} (stages: {', '.join(STAGES)})"
                )
        return problems


class Turn:
    """One incoming message as a plugin handler sees it (not the App behind it)."""

    __slots__ = ("plugin", "args", "match", "_ctx")

    def __init__(
        self,
        plugin: "PluginContext",
        ctx: "Context",
        *,
        args: tuple[str, ...] = (),
        match: "re.Match[str] | None" = None,
    ) -> None:
        self.plugin = plugin
        self.args = args
        self.match = match
        self._ctx = ctx

    @property
    def event(self) -> IncomingMessage:
        return self._ctx.event

    @property
    def text(self) -> str:
        return self._ctx.event.text

    @property
    def user(self) -> UserRef:
        return self._ctx.event.user

    @property
    def key(self) -> ConversationKey:
        return self._ctx.event.key

    @property
    def is_admin(self) -> bool:
        return self.plugin.is_admin(self._ctx.event)

    @property
    def state(self) -> dict[str, Any]:
        """Per-message data shared by this plugin's hooks (e.g. a contributor and a reply filter)."""
        return self._ctx.state.setdefault(f"plugin:{self.plugin.name}", {})

    @property
    def locale(self) -> str:
        """The reader's language (core/i18n.py): their /profile choice, the platform's hint, the bot's."""
        return self._ctx.locale

    def t(self, message: str, **kwargs: Any) -> str:
        """``message`` in the reader's language (bundled catalogs; unknown text passes unchanged)."""
        return self._ctx.t(message, **kwargs)

    def nt(self, singular: str, plural: str, n: int, **kwargs: Any) -> str:
        return self._ctx.nt(singular, plural, n, **kwargs)

    async def reply(self, answer: Reply | str, *, private: bool = False) -> SentMessage:
        return await self._ctx.reply(answer, private=private)
