"""The App: one bot's settings, ports and dispatcher, with its lifecycle.

    async with App(settings) as app:        # opens the store, loads the model once
        await app.dispatcher.feed(event, outbox)

Ports can be injected (tests pass a ScriptedGenerator or an in-memory Store);
otherwise they are built from the settings. Optional features (personalization,
safety, plugins) attach in ``FEATURES`` order through the ChatService's and the
router's extension points.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from core.chat import ChatService
from core.commands import CommandRegistry, CommandSpec
from core.dispatcher import Context, Dispatcher, Middleware, Route, Router
from core.errors import ConfigError, PermissionDenied, UnknownCommand
from core.events import IncomingMessage, Reply
from core.middleware import RateLimiter, limit_input
from core.personalization.feature import setup_personalization
from core.personas import BUNDLED_PERSONAS, PersonaLibrary
from core.plugins.manager import setup_plugins
from core.recovery import ResumingDedupe, drop_banned_linked
from core.safety import setup_safety
from core.ports import Embedder, Generator, Store
from core.settings import BUILTIN_MODEL, BotSettings

log = logging.getLogger(__name__)

CommandFilter = Callable[[Context, CommandSpec], Awaitable[None]]
Feature = Callable[["App", AsyncExitStack], Awaitable[None]]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default_model"


def resolve_model_path(path: str) -> str:
    return str(DEFAULT_MODEL_DIR) if path == BUILTIN_MODEL else path


async def build_generator(settings: BotSettings) -> Generator:
    """The Generator the bot file asks for. Heavy imports happen only here."""
    model = settings.model
    if model.backend == "scripted":
        from core.generation.scripted import ScriptedGenerator

        return ScriptedGenerator(list(model.replies) or ["Hello!"])
    if model.backend == "openai":
        from core.generation.openai_backend import OpenAIGenerator

        if not model.base_url or not model.model:
            raise ConfigError(f"{settings.source}: model.base_url and model.model are required for backend 'openai'")
        api_key = BotSettings.secret(model.api_key_env, "model.api_key_env") if model.api_key_env else None
        return OpenAIGenerator(
            base_url=model.base_url,
            model=model.model,
            api_key=api_key,
            tokenizer=model.tokenizer,
            context_window=model.context_window or 4096,
            max_in_flight=model.max_in_flight,
        )
    from core.generation.transformers_backend import TransformersGenerator

    return await TransformersGenerator.load(
        resolve_model_path(model.path),
        adapter=model.adapter,
        device=model.device,
        dtype=model.dtype,
        context_window=model.context_window,
        max_batch_size=model.max_batch_size,
        max_queue=model.max_queue,
    )


async def open_store(settings: BotSettings) -> Store:
    from core.storage.sqlite import SQLiteStore

    path = settings.database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(path)


class App:
    def __init__(
        self,
        settings: BotSettings,
        *,
        store: Store | None = None,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        features: list[Feature] | None = None,
    ) -> None:
        self.settings = settings
        self._given_store, self._given_generator = store, generator
        self.embedder = embedder
        self.features = FEATURES if features is None else features
        folders = [BUNDLED_PERSONAS] + [settings.resolve_path(folder) for folder in settings.personas.dirs]
        self.personas = PersonaLibrary.load(folders)
        if settings.personas.default not in self.personas:
            raise ConfigError(
                f"{settings.source}: personas.default: unknown persona {settings.personas.default!r}"
                f" (known: {', '.join(self.personas.names())})"
            )
        self.commands = CommandRegistry()
        self.command_filters: list[CommandFilter] = [require_admin]
        self.chat = ChatService(self)
        self.router = Router(
            [
                Route("command", lambda ctx: ctx.event.command is not None, run_command),
                Route("chat", lambda ctx: ctx.event.addressed_to_bot, self.chat.handle),
            ]
        )
        limits = settings.limits
        self.middlewares: list[Middleware] = [
            ResumingDedupe(),
            drop_banned_linked,
            RateLimiter(
                limits.user_messages_per_minute, limits.user_burst, limits.chat_messages_per_minute, limits.chat_burst
            ),
            limit_input(limits.max_input_chars),
        ]
        self.dispatcher = Dispatcher(self, self.middlewares, self.router)
        self._stack = AsyncExitStack()
        self.store: Store
        self.generator: Generator

    async def __aenter__(self) -> "App":
        from core.builtin_commands import BUILTIN_COMMANDS

        try:
            store = self._given_store or await open_store(self.settings)
            self.store = await self._stack.enter_async_context(store)
            for persona in self.personas.all():
                await self.store.upsert_persona(persona.name, persona.model_dump(mode="json"))
            self.generator = self._given_generator or await build_generator(self.settings)
            self._stack.push_async_callback(self.generator.aclose)
            self.commands.extend(BUILTIN_COMMANDS)
            for feature in self.features:
                await feature(self, self._stack)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def is_banned(self, user_id: str) -> bool:
        return await self.store.is_banned(user_id)

    def is_admin(self, event: IncomingMessage) -> bool:
        settings = self.settings
        if event.user.platform == "console":  # the operator at the machine (adapters/console)
            return True
        if event.user.qualified in settings.all_admins():
            return True
        roles = set(settings.discord.admin_roles) if event.key.platform == "discord" else set()
        return bool(roles.intersection(event.user_roles))


async def require_admin(ctx: Context, spec: CommandSpec) -> None:
    """The authorization filter for every ``admin_only`` command; refusals are audited."""
    if spec.admin_only and not ctx.app.is_admin(ctx.event):
        await ctx.app.store.audit(ctx.event.user.qualified, f"admin {spec.name}", outcome="denied")
        raise PermissionDenied(f"{ctx.event.user} is not an admin", user_message="Only the bot's admins can do that.")


async def run_command(ctx: Context) -> None:
    app, call = ctx.app, ctx.event.command
    assert call is not None
    found = app.commands.find(call)
    if found is None:
        raise UnknownCommand(f"unknown command /{call.name}")
    spec, raw_args = found
    for command_filter in app.command_filters:
        await command_filter(ctx, spec)
    args = spec.bind(raw_args)
    try:
        answer = await spec.handler(ctx, args)
    except Exception:
        if spec.admin_only:
            await app.store.audit(ctx.event.user.qualified, f"admin {spec.name}", " ".join(args), "error")
        raise
    if spec.admin_only:
        await app.store.audit(ctx.event.user.qualified, f"admin {spec.name}", " ".join(args), "ok")
    if answer is not None:
        reply = answer if isinstance(answer, Reply) else Reply(answer, private=spec.private)
        await ctx.reply(reply)


# Order matters: safety wraps the generator and the chain first; plugins come last so
# they see the commands and routes of the features before them.
FEATURES: list[Feature] = [setup_safety, setup_personalization, setup_plugins]
