"""Loads the enabled plugins into an App, isolates them, and answers for them.

Start-up, in order (``setup_plugins``):

1. read ``[plugins]``; a name that is not installed, a config that does not
   validate, or two plugins claiming one command or persona stop the bot with a
   ConfigError naming file, plugin and field (an operator's mistake, fixed in the file);
2. a plugin whose code fails to import, imports a platform library, breaks the
   privacy contract, or raises in its setup is disabled with a logged reason; the bot
   starts without it (a plugin's mistake must not take the bot down);
3. the others are wired into the core's own extension points: commands into the
   CommandRegistry (so adapters publish them), message handlers as routes before
   ``chat``, middlewares after the core's, prompt contributors and reply filters into
   the ChatService, personas into the library; then the job scheduler starts.

At run time every plugin call is guarded: an exception is logged with the plugin's
name, the user gets a short apology (PluginError), and everything else goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from core.commands import CommandSpec
from core.dispatcher import Context, Handler, Route
from core.errors import ConfigError, NotFound, PersonabotError, PluginError
from core.events import ConversationKey, Reply, SentMessage
from core.personas import Persona, PersonaLibrary
from core.plugins.api import CONTINUE, MessageHandler, Plugin, Turn
from core.personalization.settings import CatalogItem
from core.plugins.context import PluginContext
from core.plugins.loader import (
    PluginLoadError,
    PluginSource,
    platform_imports,
    read_section,
    resolve,
    validate_config,
)
from core.plugins.scheduler import Scheduler
from core.ports import Outbox, PluginStore
from core.prompt import PromptSection

if TYPE_CHECKING:
    from core.app import App

log = logging.getLogger(__name__)

T = TypeVar("T")

ACTIVE, DISABLED, REFUSED = "active", "disabled", "refused"


@dataclass
class LoadedPlugin:
    plugin: Plugin
    ctx: PluginContext
    origin: str
    failures: int = 0  # guarded calls that raised since start


@dataclass(frozen=True, slots=True)
class PluginStatus:
    name: str
    state: str  # active | disabled (import or setup failed) | refused (contract)
    origin: str
    reason: str = ""
    commands: tuple[str, ...] = ()


@dataclass
class _Outboxes:
    registered: dict[str, Outbox] = field(default_factory=dict)  # adapters' own, preferred
    seen: dict[str, Outbox] = field(default_factory=dict)  # learned from incoming events

    def get(self, platform: str) -> Outbox | None:
        return self.registered.get(platform) or self.seen.get(platform)

    def platforms(self) -> list[str]:
        return sorted(set(self.registered) | set(self.seen))


def apology(plugin: str) -> str:
    return f"Sorry, the {plugin} feature had a problem with that. Everything else still works; please try later."


class PluginManager:
    """``app.plugins``: the loaded plugins, their status, delivery and the privacy calls."""

    def __init__(self, app: "App", *, job_timeout_s: float = 60.0) -> None:
        self.app = app
        self.store: PluginStore = app.store  # type: ignore[assignment]  # checked in start() when plugins are enabled
        self.loaded: dict[str, LoadedPlugin] = {}  # active plugins, in load order
        self.statuses: dict[str, PluginStatus] = {}
        self._privacy: dict[str, LoadedPlugin] = {}  # every plugin that passed the contract
        self._enabled: tuple[str, ...] = ()
        self._outboxes = _Outboxes()
        self.scheduler = Scheduler(self, job_timeout_s=job_timeout_s)

    # start-up --------------------------------------------------------------------------

    def _candidates(self, where: str) -> list[tuple[PluginSource, Plugin, Any]]:
        """The enabled plugins that import and keep the contract, with their validated configs."""
        app = self.app
        section = read_section(app.settings)
        self._enabled = section.enabled
        if section.enabled and not isinstance(app.store, PluginStore):
            raise ConfigError(f"{where}: plugins: the store {type(app.store).__name__} cannot host plugins")
        configs = section.configs()
        candidates: list[tuple[PluginSource, Plugin, Any]] = []
        for source in resolve(app.settings, section):
            plugin = self._import(source)
            if plugin is None:
                continue
            config = validate_config(plugin, configs.get(source.name, {}), where)
            candidates.append((source, plugin, config))
        return candidates

    def load_privacy_hooks(self) -> None:
        """Import the enabled plugins for :meth:`export_user` and :meth:`forget_user` only.

        For ``personabot users export|forget``: no setup hook runs, nothing is wired and
        no job runs, as for a plugin whose setup failed (its privacy hooks still run).
        """
        for source, plugin, config in self._candidates(str(self.app.settings.source or "bot file")):
            self._privacy[plugin.name] = LoadedPlugin(plugin, PluginContext(plugin, config, self), source.origin)

    async def start(self, stack: AsyncExitStack) -> None:
        app = self.app
        where = str(app.settings.source or "bot file")
        candidates = self._candidates(where)
        self._check_clashes([plugin for _, plugin, _ in candidates], where)
        for source, plugin, config in candidates:
            ctx = PluginContext(plugin, config, self)
            loaded = LoadedPlugin(plugin, ctx, source.origin)
            self._privacy[plugin.name] = loaded
            try:
                for hook in plugin.setup_hooks:
                    await hook(ctx)
            except Exception as exc:
                self._disable(source, DISABLED, f"setup failed: {type(exc).__name__}: {exc}", exc)
                continue
            stack.push_async_callback(self._teardown, loaded)
            await self._wire(loaded)
            self.loaded[plugin.name] = loaded
            commands = tuple(f"/{spec.qualified_name}" for spec in plugin.commands)
            self.statuses[plugin.name] = PluginStatus(plugin.name, ACTIVE, source.origin, commands=commands)
            log.info("plugin %s loaded from %s", plugin.name, source.origin)
        app.commands.add(
            CommandSpec("plugins", "List the bot's plugins and their state", _admin_plugins, admin_only=True,
                        private=True, owner="plugins")
        )
        if self.loaded:
            app.dispatcher.middlewares.insert(0, self._remember_outbox)
            self.scheduler.start()
            stack.push_async_callback(self.scheduler.stop)

    def _import(self, source: PluginSource) -> Plugin | None:
        try:
            plugin, files = source.load()
        except PluginLoadError as exc:
            self._disable(source, DISABLED, str(exc), exc.__cause__ or exc)
            return None
        offending = platform_imports(files)
        if offending:
            self._disable(source, REFUSED, "plugins must not import a platform library: " + "; ".join(offending))
            return None
        problems = plugin.contract_problems()
        if problems:
            self._disable(source, REFUSED, "; ".join(problems))
            return None
        return plugin

    def _disable(self, source: PluginSource, state: str, reason: str, exc: BaseException | None = None) -> None:
        log.error("plugin %s %s: %s; the bot starts without it", source.name, state, reason, exc_info=exc)
        self.statuses[source.name] = PluginStatus(source.name, state, source.origin, reason)

    def _check_clashes(self, plugins: list[Plugin], where: str) -> None:
        """Two owners for one command or persona stop the start, naming both."""
        commands = {(spec.admin_only, spec.name): spec.owner for spec in self.app.commands.user_commands()}
        commands |= {(True, spec.name): spec.owner for spec in self.app.commands.admin_commands()}
        commands[(True, "plugins")] = "plugins"
        personas = {name: "the bot's persona folders" for name in self.app.personas.names()}
        for plugin in plugins:
            for spec in plugin.commands:
                owner = commands.setdefault((spec.admin_only, spec.name), plugin.name)
                if owner != plugin.name:
                    raise ConfigError(
                        f"{where}: plugins: command /{spec.qualified_name} is claimed by both {owner} and {plugin.name}"
                    )
            for persona in plugin.personas:
                owner = personas.setdefault(persona.name, f"plugin {plugin.name}")
                if owner != f"plugin {plugin.name}":
                    raise ConfigError(
                        f"{where}: plugins: persona {persona.name!r} is defined by both {owner} and plugin {plugin.name}"
                    )

    async def _teardown(self, loaded: LoadedPlugin) -> None:
        for hook in reversed(loaded.plugin.teardown_hooks):
            try:
                await hook(loaded.ctx)
            except Exception:
                log.exception("plugin %s: teardown failed", loaded.plugin.name)

    # wiring ------------------------------------------------------------------------------

    async def _wire(self, loaded: LoadedPlugin) -> None:
        app, plugin = self.app, loaded.plugin
        for spec in plugin.commands:
            app.commands.add(replace(spec, handler=self._command(loaded, spec)))
        for handler in plugin.message_handlers:
            app.router.add(self._route(loaded, handler), before="chat")
        for middleware in plugin.middlewares:
            app.dispatcher.middlewares.append(self._middleware(loaded, middleware))
        for contributor in plugin.contributors:
            app.chat.contributors.append(self._contributor(loaded, contributor))
        for reply_filter in plugin.reply_filters:
            app.chat.reply_filters.append(self._reply_filter(loaded, reply_filter))
        if plugin.personas:
            known = {persona.name: persona for persona in app.personas.all()}
            app.personas = PersonaLibrary(known | {persona.name: persona for persona in plugin.personas})
            for persona in plugin.personas:
                await app.store.upsert_persona(persona.name, persona.model_dump(mode="json"))

    async def _guard(self, loaded: LoadedPlugin, what: str, call: Awaitable[T]) -> T:
        """Await a plugin's code: its deliberate PersonabotErrors pass, anything else becomes an apology."""
        try:
            return await call
        except Exception as exc:
            if isinstance(exc, PersonabotError) and not isinstance(exc, ConfigError):
                raise  # a deliberate answer (usage, not found…); a ConfigError is the plugin's bug
            raise self._failure(loaded, what, exc) from exc

    @staticmethod
    def _failure(loaded: LoadedPlugin, what: str, exc: Exception) -> PluginError:
        loaded.failures += 1
        loaded.ctx.log.error("plugin %s: %s failed: %s", loaded.plugin.name, what, exc, exc_info=exc)
        return PluginError(
            f"plugin {loaded.plugin.name}: {what} failed: {type(exc).__name__}: {exc}",
            user_message=apology(loaded.plugin.name),
        )

    def _command(self, loaded: LoadedPlugin, spec: CommandSpec) -> Callable[[Context, tuple[str, ...]], Awaitable[Any]]:
        handler = spec.handler

        async def run(ctx: Context, args: tuple[str, ...]) -> Reply | str | None:
            turn = Turn(loaded.ctx, ctx, args=args)
            return await self._guard(loaded, f"command /{spec.qualified_name}", handler(turn))  # type: ignore[arg-type]

        return run

    def _route(self, loaded: LoadedPlugin, declared: MessageHandler) -> Route:
        name = f"plugin:{loaded.plugin.name}:{declared.name}"
        match_key = f"match:{name}"

        def matches(ctx: Context) -> bool:
            event = ctx.event
            if event.command is not None or not (event.addressed_to_bot or declared.unaddressed):
                return False
            try:
                result = declared.trigger.test(event)
            except Exception:
                loaded.failures += 1
                loaded.ctx.log.exception("plugin %s: trigger of %s failed", loaded.plugin.name, declared.name)
                return False
            if not result:
                return False
            ctx.state[match_key] = result if isinstance(result, re.Match) else None
            return True

        async def handle(ctx: Context) -> None:
            turn = Turn(loaded.ctx, ctx, match=ctx.state.pop(match_key, None))
            answer = await self._guard(loaded, f"message handler {declared.name}", declared.handler(turn))
            if answer is CONTINUE:
                await self._route_after(ctx, name)
                return
            for notice in ctx.notices:
                await ctx.reply(notice)
            ctx.notices.clear()
            if answer is not None:
                reply = answer if isinstance(answer, Reply) else Reply(str(answer))
                await ctx.reply(reply)
                await self._record(ctx, reply.text)

        return Route(name, matches, handle)

    async def _record(self, ctx: Context, answer: str) -> None:
        """Keep a handler's exchange in the conversation, as a chat turn is kept.

        The model then sees it in later prompts, and the message counts as stored and
        answered (`personabot ask`, de-duplication, /export). Stored once answered, so a
        crash in between leaves no turn for crash recovery to give to the model instead.
        """
        event, store = ctx.event, self.app.store
        async with self.app.chat.lock(event.key.qualified):
            await store.touch_user(event.user.qualified, event.user_display_name)
            conversation = await store.active_conversation(event.key)
            turn = await store.add_user_message(conversation.id, event.user.qualified, event.text, event.event_id)
            await store.add_reply(turn.id, answer)

    async def _route_after(self, ctx: Context, name: str) -> None:
        """Routing continues after the route ``name`` (a handler returned CONTINUE)."""
        routes = self.app.router.routes
        index = next(i for i, route in enumerate(routes) if route.name == name)
        for route in routes[index + 1 :]:
            if route.matches(ctx):
                ctx.state["route"] = route.name
                await route.handle(ctx)
                return

    def _middleware(self, loaded: LoadedPlugin, middleware: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        label = getattr(middleware, "__name__", "middleware")

        async def plugin_middleware(ctx: Context, call_next: Handler) -> None:
            downstream: list[BaseException] = []
            done = False

            async def next_step() -> None:
                nonlocal done
                if done:
                    return  # called twice: the event was already handled
                done = True
                try:
                    await call_next(ctx)
                except BaseException as exc:
                    downstream.append(exc)
                    raise

            try:
                await middleware(Turn(loaded.ctx, ctx), next_step)
            except Exception as exc:
                if (downstream and exc is downstream[0]) or (
                    isinstance(exc, PersonabotError) and not isinstance(exc, ConfigError)
                ):
                    raise  # not a failure of the plugin: the dispatcher answers it
                failure = self._failure(loaded, f"middleware {label}", exc)
                if done:
                    return  # the user has their answer already; an apology now would only confuse
                raise failure from exc

        plugin_middleware.__name__ = f"plugin:{loaded.plugin.name}:{label}"
        return plugin_middleware

    def _contributor(self, loaded: LoadedPlugin, contributor: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[list[PromptSection]]]:
        async def contribute(ctx: Context, persona: Persona) -> list[PromptSection]:
            """A failing contributor costs its context only: the reply still comes."""
            try:
                produced = await contributor(Turn(loaded.ctx, ctx), persona) or ()
                sections = [item if isinstance(item, PromptSection) else PromptSection(str(item)) for item in produced]
            except Exception:
                loaded.failures += 1
                loaded.ctx.log.exception("plugin %s: prompt contributor failed", loaded.plugin.name)
                return []
            return sections

        return contribute

    def _reply_filter(self, loaded: LoadedPlugin, reply_filter: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
        async def edit(ctx: Context, text: str) -> str:
            try:
                edited = await reply_filter(Turn(loaded.ctx, ctx), text)
            except Exception:
                loaded.failures += 1
                loaded.ctx.log.exception("plugin %s: reply filter failed; reply left as it was", loaded.plugin.name)
                return text
            return edited if isinstance(edited, str) else text

        return edit

    # delivery ----------------------------------------------------------------------------

    def register_outbox(self, platform: str, outbox: Outbox) -> None:
        """Adapters call this at start so jobs can post to any chat of their platform."""
        self._outboxes.registered[platform] = outbox
        self.scheduler.wake()

    async def _remember_outbox(self, ctx: Context, call_next: Handler) -> None:
        """Until an adapter registers one, the Outbox of a platform's last chat message posts for jobs.

        Commands are skipped: a slash command's Outbox may only answer that interaction.
        """
        platform = ctx.event.key.platform
        if platform not in self._outboxes.registered and ctx.event.command is None:
            first = platform not in self._outboxes.seen
            self._outboxes.seen[platform] = ctx.outbox
            if first:
                self.scheduler.wake()
        await call_next(ctx)

    _remember_outbox.__name__ = "plugin_outboxes"  # type: ignore[attr-defined]

    def connected_platforms(self) -> list[str]:
        return self._outboxes.platforms()

    async def deliver(self, key: ConversationKey, reply: Reply) -> SentMessage:
        outbox = self._outboxes.get(key.platform)
        if outbox is None:
            raise NotFound(f"not connected to {key.platform}; cannot post to {key}")
        sent = await outbox.send(key, reply)
        close = getattr(outbox, "close", None)  # an Outbox that buffers (Telegram drafts) delivers on close
        if close is not None:
            await close()
        return sent

    # what others ask of plugins ---------------------------------------------------------

    def active_names(self) -> list[str]:
        return list(self.loaded)

    def catalog(self) -> list[CatalogItem]:
        """Catalog items of the active plugins (for /recommend)."""
        return [item for loaded in self.loaded.values() for item in loaded.ctx.catalog]

    def describe(self) -> list[PluginStatus]:
        return list(self.statuses.values())

    async def export_user(self, user_id: str) -> dict[str, Any]:
        """What each plugin keeps about ``user_id``, by plugin (for /export).

        A failing exporter is logged and its entry says so, so the export is never
        silently incomplete.
        """
        exported: dict[str, Any] = {}
        for name, loaded in self._privacy.items():
            if loaded.plugin.exporter is None:
                continue
            try:
                exported[name] = await loaded.plugin.exporter(loaded.ctx, user_id)
            except Exception as exc:
                loaded.ctx.log.error("plugin %s: export of a user failed", name, exc_info=exc)
                exported[name] = {"error": f"the {name} plugin could not export its data; the operator was told"}
        return exported

    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete what every plugin keeps about ``user_id`` (for /forget): counts by plugin.

        The plugin's own forget runs first; then whatever is left of the user in the
        plugin's storage and jobs is deleted anyway. Raises PluginError naming the
        plugins whose forget failed, after all others ran.
        """
        counts: dict[str, int] = {}
        failed = []
        for name in self._enabled:
            count = 0
            loaded = self._privacy.get(name)
            if loaded is not None and loaded.plugin.forgetter is not None:
                try:
                    count = int(await loaded.plugin.forgetter(loaded.ctx, user_id) or 0)
                except Exception as exc:
                    loaded.ctx.log.error("plugin %s: forgetting a user failed", name, exc_info=exc)
                    failed.append(name)
            counts[name] = count + await self.store.plugin_forget_user(name, user_id)
        if failed:
            raise PluginError(
                f"forget_user: plugins {', '.join(failed)} failed",
                user_message="Some of your data could not be deleted yet; the operator was told. Please try again later.",
            )
        return counts


async def _admin_plugins(ctx: Context, args: tuple[str, ...]) -> str:
    manager: PluginManager = ctx.app.plugins  # type: ignore[attr-defined]
    lines = []
    for status in manager.describe():
        line = f"{status.name}: {status.state} ({status.origin})"
        if status.commands:
            line += " — " + ", ".join(status.commands)
        if status.reason:
            line += f" — {status.reason}"
        loaded = manager.loaded.get(status.name)
        if loaded and loaded.failures:
            line += f" — {loaded.failures} failure(s) since start, see the log"
        lines.append(line)
    return "\n".join(lines) or "No plugins are enabled."


async def setup_plugins(app: "App", stack: AsyncExitStack) -> None:
    """The plugins feature: load every plugin the bot file enables (see the module docstring)."""
    manager = PluginManager(app)
    app.plugins = manager  # type: ignore[attr-defined]
    await manager.start(stack)

