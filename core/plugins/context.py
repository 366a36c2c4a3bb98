"""The narrow view of the bot that a plugin gets: its config, its storage, send/schedule, ports.

A plugin never holds the App: what it can do to the bot is what this module offers,
which keeps plugins portable across versions and keeps their mistakes contained.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import BaseModel

from core.errors import ConfigError, InputRejected, NotFound
from core.events import ConversationKey, IncomingMessage, Reply, SentMessage, UserRef
from core.catalog import CatalogItem
from core.ports import Embedder, Generator, PluginStore
from core.records import ScheduledJob
from core.runtime import Runtime


class DeclaredPlugin(Protocol):
    """What the context reads of a plugin's declaration (core.plugins.api.Plugin)."""

    name: str
    stores_user_data: bool

    @property
    def jobs(self) -> Mapping[str, Any]: ...


class JobClock(Protocol):
    def now(self) -> float: ...

    def wake(self) -> None: ...


class PluginHost(Protocol):
    """What the context needs of the plugin manager (core.plugins.manager.PluginManager)."""

    store: PluginStore
    bot: Runtime
    scheduler: JobClock

    async def deliver(self, key: ConversationKey, reply: Reply) -> SentMessage: ...


def _user_id(user: str | UserRef) -> str:
    if isinstance(user, UserRef):
        return user.qualified
    try:
        return UserRef.parse(user).qualified
    except (ValueError, TypeError):
        raise InputRejected(f"expected a platform-qualified user id like 'telegram:1', got {user!r}") from None


class PluginStorage:
    """The plugin's own namespace in the bot's database. Values are JSON data."""

    def __init__(self, store: PluginStore, plugin: DeclaredPlugin, user_id: str = "") -> None:
        self._store, self._plugin, self._user = store, plugin, user_id

    async def get(self, key: str, default: Any = None) -> Any:
        value = await self._store.plugin_get(self._plugin.name, key, self._user)
        return default if value is None else value

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data); ``None`` deletes the key."""
        await self._store.plugin_set(self._plugin.name, key, value, self._user)

    async def delete(self, key: str) -> None:
        await self._store.plugin_set(self._plugin.name, key, None, self._user)

    async def items(self, prefix: str = "") -> dict[str, Any]:
        return await self._store.plugin_items(self._plugin.name, self._user, prefix)

    def user(self, user: str | UserRef) -> "PluginStorage":
        """The part of the namespace that belongs to one user (exported and forgotten with them).

        Only plugins that declare ``stores_user_data=True`` (and so implement export and
        forget) may keep data about a user.
        """
        if not self._plugin.stores_user_data:
            raise ConfigError(
                f"plugin {self._plugin.name} keeps user data without declaring stores_user_data=True"
                " (and implementing export_user and forget_user)"
            )
        return PluginStorage(self._store, self._plugin, _user_id(user))

    async def forget(self) -> int:
        """Delete this user's keys and jobs of the plugin (a user namespace only)."""
        if not self._user:
            raise InputRejected("forget() needs a user namespace: storage.user(user_id).forget()")
        return await self._store.plugin_forget_user(self._plugin.name, self._user)


class PluginContext:
    """What one plugin may use. Handlers get it as ``turn.plugin``; jobs and hooks as ``ctx``."""

    def __init__(self, plugin: DeclaredPlugin, config: BaseModel | None, manager: PluginHost) -> None:
        self.name = plugin.name
        self.config = config
        self.log = logging.getLogger(f"personabot.plugins.{plugin.name}")
        self.storage = PluginStorage(manager.store, plugin)
        self.state: dict[str, Any] = {}  # in memory, for this running bot only (an index, a cache)
        self.catalog: list[CatalogItem] = []
        self._plugin = plugin
        self._manager = manager

    # ports ------------------------------------------------------------------------------

    @property
    def generator(self) -> Generator:
        return self._manager.bot.generator

    @property
    def embedder(self) -> Embedder | None:
        """The bot's Embedder, or None while no feature has needed one."""
        return self._manager.bot.embedder.loaded

    async def require_embedder(self) -> Embedder:
        """The bot's Embedder; the default one is loaded (once) when the bot has none yet."""
        return await self._manager.bot.embedder.get()

    def is_admin(self, event: IncomingMessage) -> bool:
        return self._manager.bot.is_admin(event)

    def now(self) -> float:
        """Unix time; inside a job, the time the scheduler runs it at (tests can move it)."""
        return self._manager.scheduler.now()

    def path(self, value: str | Path) -> Path:
        """A path from the plugin's config: relative paths are relative to the bot file."""
        return self._manager.bot.settings.resolve_path(str(value))

    async def interest(self, user: str | UserRef) -> tuple[float, ...] | None:
        """The user's interest vector (personalization), or None when there is none yet."""
        profile = await self._manager.bot.store.get_profile(_user_id(user))
        return profile.interest

    # sending and scheduling -------------------------------------------------------------

    async def send(self, key: ConversationKey, answer: Reply | str) -> SentMessage:
        """Post to any chat on a platform the bot is connected to. Raises NotFound if none is."""
        reply = answer if isinstance(answer, Reply) else Reply(answer)
        return await self._manager.deliver(key, reply)

    async def schedule(
        self,
        job: str,
        *,
        at: float | datetime | None = None,
        delay: float | None = None,
        every: float | None = None,
        key: ConversationKey | None = None,
        user: str | UserRef | None = None,
        payload: dict[str, Any] | None = None,
    ) -> ScheduledJob:
        """Run the job handler ``job`` once at ``at`` (or after ``delay`` s), then every ``every`` s if given.

        ``key``: the chat its messages go to; ``user``: whose job it is (needs stores_user_data).
        """
        if job not in self._plugin.jobs:
            raise ConfigError(f"plugin {self.name}: no job handler {job!r} (declare it with @plugin.job)")
        if at is not None and delay is not None:
            raise InputRejected("give at= or delay=, not both")
        if at is None and delay is None and every is None:
            raise InputRejected("give at=, delay= or every=")
        if isinstance(at, datetime):
            if at.tzinfo is None:
                raise InputRejected("at= needs a timezone-aware datetime")
            at = at.timestamp()
        run_at = at if at is not None else self.now() + (delay if delay is not None else every or 0.0)
        user_id = None
        if user is not None:
            if not self._plugin.stores_user_data:
                raise ConfigError(f"plugin {self.name} schedules user jobs without declaring stores_user_data=True")
            user_id = _user_id(user)
        scheduled = await self._manager.store.add_job(
            self.name, job, run_at, every=every, key=key, user_id=user_id, payload=payload
        )
        self._manager.scheduler.wake()
        return scheduled

    async def cancel(self, job_id: int) -> bool:
        """Cancel one of this plugin's jobs; False if it does not exist (any more)."""
        return await self._manager.store.delete_job(job_id, self.name)

    async def job(self, job_id: int) -> ScheduledJob:
        found = await self._manager.store.get_job(job_id)
        if found is None or found.plugin != self.name:
            raise NotFound(f"plugin {self.name}: no job {job_id}")
        return found

    async def jobs(self, *, user: str | UserRef | None = None, name: str | None = None) -> list[ScheduledJob]:
        user_id = None if user is None else _user_id(user)
        return await self._manager.store.list_jobs(self.name, user_id, name)

    # catalog ----------------------------------------------------------------------------

    def add_catalog_items(self, items: Iterable[CatalogItem | dict[str, Any]]) -> None:
        """Items this plugin offers to the bot's recommendations (``/recommend``)."""
        for item in items:
            self.catalog.append(item if isinstance(item, CatalogItem) else CatalogItem.model_validate(item))
