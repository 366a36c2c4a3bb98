"""Loads the enabled plugins into a bot, isolates them, and answers for them.

Start-up, in order (``setup_plugins``):

1. read ``[plugins]``; a name that is not installed, a config that does not
   validate, or two plugins claiming one command or persona stop the bot with a
   ConfigError naming file, plugin and field (an operator's mistake, fixed in the file);
2. a plugin whose code fails to import, imports a platform library, breaks the
   privacy contract, or raises in its setup is disabled with a logged reason; the bot
   starts without it (a plugin's mistake must not take the bot down);
3. the others are wired into the declared seams (core/plugins/wiring.py); a plugin
   whose middleware anchors on a middleware that does not exist is refused; then the
   job scheduler starts.

Jobs post through the Outboxes adapters register (``seams.outboxes``); until one does,
through the Outbox of the platform's last chat message.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from core.dispatcher import Context, Handler
from core.errors import ConfigError, NotFound, PluginError
from core.i18n import _
from core.events import ConversationKey, Reply, SentMessage
from core.plugins.api import Plugin
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
from core.plugins.watchdog import PluginStalled, Watchdog
from core.plugins.wiring import PASS_THROUGH, LoadedPlugin, PluginWiring
from core.catalog import CatalogItem
from core.ports import Outbox, PluginStore
from core.runtime import Runtime
from core.services import PluginStatus

log = logging.getLogger(__name__)

ACTIVE, DISABLED, REFUSED = "active", "disabled", "refused"


class PluginManager:
    """``seams.services.plugins``: the loaded plugins, their status, delivery and the privacy calls."""

    def __init__(self, bot: Runtime, *, job_timeout_s: float = 60.0) -> None:
        self.bot = bot
        self.store: PluginStore = bot.store  # type: ignore[assignment]  # checked in _candidates when plugins are enabled
        self.watchdog = Watchdog()
        self.wiring = PluginWiring(bot, self.watchdog)
        self.loaded: dict[str, LoadedPlugin] = {}  # active plugins, in load order
        self.statuses: dict[str, PluginStatus] = {}
        self._privacy: dict[str, LoadedPlugin] = {}  # every plugin that passed the contract
        self._enabled: tuple[str, ...] = ()
        self._seen_outboxes: dict[str, Outbox] = {}  # learned from incoming events
        self.scheduler = Scheduler(self, job_timeout_s=job_timeout_s, metrics=bot.metrics)
        bot.seams.outboxes.on_register(lambda platform: self.scheduler.wake())

    # start-up --------------------------------------------------------------------------

    def _candidates(self, where: str) -> list[tuple[PluginSource, Plugin, Any]]:
        """The enabled plugins that import and keep the contract, with their validated configs."""
        section = read_section(self.bot.settings)
        self._enabled = section.enabled
        self.watchdog.stall_s = section.stall_s
        if section.enabled and not isinstance(self.bot.store, PluginStore):
            raise ConfigError(f"{where}: plugins: the store {type(self.bot.store).__name__} cannot host plugins")
        configs = section.configs()
        candidates: list[tuple[PluginSource, Plugin, Any]] = []
        for source in resolve(self.bot.settings, section):
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
        for source, plugin, config in self._candidates(str(self.bot.settings.source or "bot file")):
            self._privacy[plugin.name] = LoadedPlugin(plugin, PluginContext(plugin, config, self), source.origin)

    async def start(self, stack: AsyncExitStack) -> None:
        where = str(self.bot.settings.source or "bot file")
        self.watchdog.start()  # imports and setup hooks are watched too
        stack.callback(self.watchdog.stop)
        candidates = self._candidates(where)
        self._check_clashes([plugin for _, plugin, _ in candidates], where)
        for source, plugin, config in candidates:
            ctx = PluginContext(plugin, config, self)
            loaded = LoadedPlugin(plugin, ctx, source.origin)
            self._privacy[plugin.name] = loaded
            try:
                for hook in plugin.setup_hooks:
                    await self.watchdog.run(plugin.name, hook(ctx))
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                self._disable(source, DISABLED, f"setup failed: {type(exc).__name__}: {exc}", exc)
                continue
            unknown = self.wiring.unknown_anchors(plugin)
            if unknown:
                self._disable(source, REFUSED, "; ".join(unknown))
                await self._teardown(loaded)
                continue
            stack.push_async_callback(self._teardown, loaded)
            self.wiring.wire(loaded)
            self.loaded[plugin.name] = loaded
            commands = tuple(f"/{spec.qualified_name}" for spec in plugin.commands)
            self.statuses[plugin.name] = PluginStatus(plugin.name, ACTIVE, source.origin, commands=commands)
            log.info("plugin %s loaded from %s", plugin.name, source.origin)
        if self.loaded:
            self.bot.seams.middlewares.add("recovery", "plugin_outboxes", self._remember_outbox, before="dedupe")
            self.scheduler.start()
            stack.push_async_callback(self.scheduler.stop)

    def _import(self, source: PluginSource) -> Plugin | None:
        try:
            with self.watchdog.step(source.name):
                plugin, files = source.load()
        except PluginLoadError as exc:
            self._disable(source, DISABLED, str(exc), exc.__cause__ or exc)
            return None
        except PluginStalled as exc:  # imported, but held the loop longer than allowed doing it
            self._disable(source, DISABLED, f"import blocked the event loop ({exc})")
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
        commands = {(spec.admin_only, spec.name): spec.owner for spec in self.bot.commands.user_commands()}
        commands |= {(True, spec.name): spec.owner for spec in self.bot.commands.admin_commands()}
        commands[(True, "plugins")] = "plugins"
        personas = {name: "the bot's persona folders" for name in self.bot.personas.names()}
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

    # delivery ----------------------------------------------------------------------------

    async def _remember_outbox(self, ctx: Context, call_next: Handler) -> None:
        """Until an adapter registers one, the Outbox of a platform's last chat message posts for jobs.

        Commands are skipped: a slash command's Outbox may only answer that interaction.
        """
        platform = ctx.event.key.platform
        if self.bot.seams.outboxes.get(platform) is None and ctx.event.command is None:
            first = platform not in self._seen_outboxes
            self._seen_outboxes[platform] = ctx.outbox
            if first:
                self.scheduler.wake()
        await call_next(ctx)

    def _outbox(self, platform: str) -> Outbox | None:
        return self.bot.seams.outboxes.get(platform) or self._seen_outboxes.get(platform)

    def connected_platforms(self) -> list[str]:
        return sorted(set(self.bot.seams.outboxes.platforms()) | set(self._seen_outboxes))

    async def deliver(self, key: ConversationKey, reply: Reply) -> SentMessage:
        outbox = self._outbox(key.platform)
        if outbox is None:
            raise NotFound(f"not connected to {key.platform}; cannot post to {key}")
        sent = await outbox.send(key, reply)
        await outbox.aclose()  # an Outbox that buffers (Telegram drafts) delivers on close
        return sent

    # what others ask of plugins ---------------------------------------------------------

    def active_names(self) -> list[str]:
        return [name for name, loaded in self.loaded.items() if not loaded.disabled]

    def catalog(self) -> list[CatalogItem]:
        """Catalog items of the active plugins (for /recommend)."""
        return [item for loaded in self.loaded.values() if not loaded.disabled for item in loaded.ctx.catalog]

    def describe(self) -> list[PluginStatus]:
        """Each plugin's state; one disabled while running says when and why."""
        statuses = []
        for name, status in self.statuses.items():
            loaded = self.loaded.get(name)
            if loaded is not None and loaded.disabled:
                status = PluginStatus(name, DISABLED, status.origin, f"disabled while running: {loaded.disabled}")
            statuses.append(status)
        return statuses

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
                user_message=_("Some of your data could not be deleted yet; the operator was told. Please try again later."),
            )
        return counts
