"""Several bots in one process: ``personabot run a.toml b.toml …`` (issue 17, item 3).

Each bot file keeps its own personas, database, adapters, limits, plugins and operator
endpoints; bots whose ``[model]`` is the same (everything but the generation parameters,
which travel with each request) share one loaded model, and with it one batching engine.
Checked before anything loads (exit 2): two files naming the same database, and more than
one bot with the console enabled (there is one terminal). One SIGTERM/SIGINT stops every
bot; each drains its adapters as a single bot does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.events import ChatMessage, Chunk, GenerationRequest
from core.ports import Generator
from core.settings import BotSettings

log = logging.getLogger(__name__)


def check_distinct(bots: Sequence[BotSettings]) -> None:
    """ConfigError naming both files when two bots would open one database or both use the console."""
    from adapters.console.settings import ConsoleSettings
    from bots.doctor import database_location

    seen: dict[str, Path | None] = {}
    for settings in bots:
        where = str(database_location(settings))
        if where in seen:
            raise ConfigError(
                f"{seen[where]} and {settings.source} name the same database ({where}); give each bot its own [storage]"
            )
        seen[where] = settings.source
    consoles = [str(settings.source) for settings in bots if settings.platform(ConsoleSettings).enabled]
    if len(consoles) > 1:
        raise ConfigError(f"{' and '.join(consoles)}: console.enabled: only one bot of a process can have the console")


def model_key(settings: BotSettings) -> str:
    """What makes two bots' models the same model (the generation parameters do not)."""
    return json.dumps(settings.model.model_dump(mode="json", exclude={"generation"}), sort_keys=True)


class SharedGenerator:
    """One bot's handle on a shared model: closing it closes the model after the last handle.
    Its requests carry the bot's name (``tenant``), so the batching engine takes the bots in
    turn as well as their users (core/generation/batching.py)."""

    def __init__(self, inner: Generator, release: Callable[[], Awaitable[None]], bot: str = "") -> None:
        self._inner, self._release, self._closed, self._bot = inner, release, False, bot
        self.name, self.context_window = inner.name, inner.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self._inner.count_tokens(messages)

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        return self._inner.stream(dataclasses.replace(request, tenant=self._bot))

    async def health(self) -> dict[str, Any]:
        return await self._inner.health()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._release()


class ModelRegistry:
    """Loads each distinct model once for the bots of this process."""

    def __init__(self, load: Callable[[BotSettings], Awaitable[Generator]] | None = None) -> None:
        from core.bootstrap import build_generator

        self._load = load or build_generator
        self._models: dict[str, tuple[Generator, int]] = {}
        self._lock = asyncio.Lock()

    async def handle(self, settings: BotSettings) -> SharedGenerator:
        key = model_key(settings)
        async with self._lock:  # a second bot waits for the first one's load instead of loading again
            if key in self._models:
                model, users = self._models[key]
                log.info("%s shares the model already loaded for another bot", settings.name)
            else:
                log.info("loading the model of %s", settings.name)
                model, users = await self._load(settings), 0
            self._models[key] = (model, users + 1)

        async def release() -> None:
            async with self._lock:
                model, users = self._models[key]
                if users > 1:
                    self._models[key] = (model, users - 1)
                    return
                del self._models[key]
            await model.aclose()

        return SharedGenerator(model, release, settings.name)

    @property
    def loaded(self) -> int:
        return len(self._models)


Starters = Callable[[BotSettings], list[tuple[str, Any]]]  # bots.cli.adapter_starters
ConsoleOf = Callable[[BotSettings, Any], Any]  # bots.cli.web_console


async def serve_bot(
    settings: BotSettings, generator: Generator, stop: asyncio.Event, adapter_starters: Starters, web_console: ConsoleOf
) -> None:
    """One bot of the process, as ``personabot run`` serves a single one (its operator server included)."""
    from bots.app_factory import bot_app
    from core.bootstrap import select_features
    from core.http.operator import Operator, setup_metrics

    starters = adapter_starters(settings)
    operator = Operator.from_settings(settings.http)
    app = bot_app(settings, generator=generator, metrics=operator.metrics, features=[*select_features(settings), setup_metrics])
    console = web_console(settings, operator)
    async with operator, console, app as running:
        await running.store.claim_bot_process()  # SQLite: one bot process per file (PostgreSQL: any)
        operator.watch(running)
        if settings.web.enabled:
            console.attach(running, metrics=operator.metrics, health=operator.health)
        for name, _ in starters:
            operator.health.report(name, "connecting")
        tasks = [asyncio.create_task(start(running, stop, operator), name=f"{settings.name}:{name}") for name, start in starters]
        operator.health.started()
        if not tasks:  # a bot without adapters (its web console only) runs until the stop signal
            await stop.wait()
            return
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # as with one bot: an adapter that ended stops the process
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception():
                raise task.exception()  # type: ignore[misc]


async def run_bots(
    bots: Sequence[BotSettings],
    adapter_starters: Starters,
    web_console: ConsoleOf,
    registry: ModelRegistry | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve every bot until a stop signal (or ``stop``); a bot that fails stops the others."""
    registry = registry or ModelRegistry()
    if stop is None:  # the CLI: one SIGTERM or SIGINT stops every bot
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

    async def one(settings: BotSettings) -> None:
        try:
            await serve_bot(settings, await registry.handle(settings), stop, adapter_starters, web_console)
        finally:
            stop.set()  # one bot ended (fatal error, console EOF): the others stop cleanly too

    results = await asyncio.gather(*(one(settings) for settings in bots), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
