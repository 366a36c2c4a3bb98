"""The Runtime: one running bot's ports, chat service, dispatcher and seams, as typed fields.

Built by the App when it opens (core/app.py) and handed to each feature's setup and to
each adapter's ``serve``. Features add to ``seams`` only; the two fields they may cause
to change are changed once, by the App, through declared seams: ``generator`` (after
``seams.generator_wrappers``) and the dispatcher's chain (from ``seams.middlewares``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.chat import ChatService
from core.commands import CommandRegistry
from core.dispatcher import Dispatcher
from core.events import IncomingMessage
from core.http.metrics import Metrics
from core.personas import PersonaLibrary
from core.ports import Embedder, Generator, Store
from core.seams import Seams, Services
from core.settings import BotSettings


EmbedderLoader = Callable[[str | None, int], Awaitable[Embedder]]


class EmbedderSlot:
    """The bot's one Embedder, shared by every feature: given, or loaded once when first needed."""

    def __init__(self, given: Embedder | None, load: EmbedderLoader | None) -> None:
        self._embedder, self._load = given, load
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> Embedder | None:
        return self._embedder

    async def get(self, spec: str | None = None, batch_size: int = 32) -> Embedder:
        """The Embedder; the first caller's ``spec`` (None: the default model) is loaded if none is."""
        async with self._lock:
            if self._embedder is None:
                if self._load is None:
                    raise RuntimeError("this bot was built without an embedder loader")
                self._embedder = await self._load(spec, batch_size)
            return self._embedder


@dataclass
class Runtime:
    settings: BotSettings
    personas: PersonaLibrary
    store: Store
    generator: Generator
    embedder: EmbedderSlot
    seams: Seams
    chat: ChatService
    dispatcher: Dispatcher  # its chain is set by the App once every feature is set up
    metrics: Metrics = field(default_factory=Metrics)  # what features count (core/http/metrics.py)

    @property
    def commands(self) -> CommandRegistry:
        return self.seams.commands

    @property
    def services(self) -> Services:
        return self.seams.services

    def is_admin(self, event: IncomingMessage) -> bool:
        """Listed in the bot file, or an admin by the policy of the event's platform (its adapter's)."""
        if event.user.qualified in self.settings.all_admins():
            return True
        policy = self.seams.admin_policies.get(event.key.platform)
        return bool(policy and policy(event))

    def is_chat_admin(self, event: IncomingMessage) -> bool:
        """A bot admin, or an admin of the event's own chat (``seams.chat_admin_policies``)."""
        policy = self.seams.chat_admin_policies.get(event.key.platform)
        return self.is_admin(event) or bool(policy and policy(event))

    async def is_banned(self, user_id: str) -> bool:
        """A ban on any identity linked with ``user_id`` counts, as for live messages (core/recovery.py)."""
        return await self.store.banned_identity(user_id) is not None
