"""The App: one bot's lifecycle. It opens what it is given, in order, and closes it in reverse.

    async with build_app(settings) as bot:     # core/bootstrap.py wires the parts
        await bot.dispatcher.feed(event, outbox)

Opening: the store, the :class:`~core.runtime.Runtime`, each feature's setup with the
runtime and the exit stack, and only then the generator: the model loads after every
check a feature makes of the bot file (a bad section exits 2 without a model load).
Then the declared seams that change the runtime are applied once: generator wrappers,
feature personas (every persona is then written to the store) and the middleware chain
resolved from its stages. Features must not generate during setup. The App imports no
feature.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

from core.chat import ChatService
from core.dispatcher import Dispatcher
from core.errors import GenerationError
from core.events import ChatMessage, Chunk, GenerationRequest
from core.i18n import choose_locale
from core.http.metrics import Metrics
from core.personas import PersonaLibrary
from core.ports import Embedder, Generator, Store
from core.runtime import EmbedderLoader, EmbedderSlot, Runtime
from core.seams import AdminPolicy, Seams
from core.settings import BotSettings

log = logging.getLogger(__name__)

Feature = Callable[[Runtime, AsyncExitStack], Awaitable[None]]


class NotLoaded:
    """The generator while features set up: the model is not loaded yet, so nothing generates."""

    name = "not loaded"
    context_window = 0

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        raise GenerationError("the model is not loaded yet")

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        raise GenerationError("the model is not loaded yet")
        yield  # pragma: no cover - makes this an async generator

    async def health(self) -> dict[str, Any]:
        return {"status": "loading"}

    async def aclose(self) -> None:
        return None


class App:
    def __init__(
        self,
        settings: BotSettings,
        *,
        personas: PersonaLibrary,
        open_store: Callable[[], Awaitable[Store]],
        open_generator: Callable[[], Awaitable[Generator]],
        features: Sequence[Feature],
        embedder: Embedder | None = None,
        load_embedder: EmbedderLoader | None = None,
        admin_policies: Mapping[str, AdminPolicy] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics if metrics is not None else Metrics()
        self.personas = personas
        self._open_store, self._open_generator = open_store, open_generator
        self._features = tuple(features)
        self._embedder = EmbedderSlot(embedder, load_embedder)
        self._admin_policies = dict(admin_policies or {})
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Runtime:
        try:
            return await self._open()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _open(self) -> Runtime:
        store = await self._stack.enter_async_context(await self._open_store())
        seams = Seams(admin_policies=dict(self._admin_policies))
        loading = NotLoaded()
        chat = ChatService(self.settings, self.personas, store, loading, seams)
        dispatcher = Dispatcher(seams.routes, locale=choose_locale([self.settings.language]))
        bot = Runtime(self.settings, self.personas, store, loading, self._embedder, seams, chat, dispatcher, self._metrics)
        for feature in self._features:
            await feature(bot, self._stack)
        bot.generator = await self._open_generator()  # the model loads after every feature checked its section
        self._stack.push_async_callback(bot.generator.aclose)
        for wrap in seams.generator_wrappers:
            bot.generator = wrap(bot.generator)
        chat.generator = bot.generator
        if seams.personas:
            self.personas.extend(seams.personas)
        for persona in self.personas.all():  # the bot file's and the features' personas, as the bot serves them
            await store.upsert_persona(persona.name, persona.model_dump(mode="json"))
        bot.dispatcher.set_chain([(f"{p.stage}:{p.name}", p.middleware) for p in seams.middlewares.resolve()])
        log.info("%s: %s", self.settings.name, " → ".join(bot.dispatcher.describe()))
        return bot

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
