"""The composition root: ports from the settings, the core's own parts, then the features.

    app = build_app(settings)                  # configuration checked here, nothing opened
    async with app as bot: ...                 # core/app.py opens and closes

Nothing in core imports this module: only the CLI, adapters' tests and benchmarks do.
The features a bot runs are named in its file (``features = [...]``, default all of
:data:`FEATURES`, in that order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from core.access import AllowList, ChooseLocale, Pairing, approve_spec
from core.app import App, Feature
from core.builtin_commands import builtin_commands
from core.bursts import BurstMerger
from core.command_route import CommandRoute, RequireAdmin
from core.conversation_lease import ConversationLease
from core.dispatcher import Route
from core.errors import ConfigError
from core.etiquette import BotTurns, ChannelCooldown
from core.http.metrics import Metrics
from core.middleware import RateLimiter, limit_input
from core.personalization.feature import setup_personalization
from core.personas import BUNDLED_PERSONAS, PersonaLibrary
from core.plugins.feature import setup_plugins
from core.ports import Embedder, Generator, Store
from core.recovery import DropBanned, ResumingDedupe
from core.runtime import Runtime
from core.safety import setup_safety
from core.seams import AdminPolicy
from core.tools.feature import setup_tools
from core.media_feature import setup_media
from core.generation.reserve import reply_reserve_problem
from core.settings import BUILTIN_MODEL, BotSettings

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default_model"

FEATURES: dict[str, Feature] = {
    "safety": setup_safety,
    "personalization": setup_personalization,
    "plugins": setup_plugins,
    "tools": setup_tools,
    "media": setup_media,
}
"""Order matters: safety wraps the generator first; plugins come after the features whose
commands they see; tools last, so every feature's and plugin's tools are declared."""


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
            vision=model.vision,
        )
    from core.generation.transformers_backend import TransformersGenerator

    if model.vision:  # from config.json, before any weights load
        from core.generation.vision import check_vision_model

        check_vision_model(resolve_model_path(model.path), str(settings.source))
    return await TransformersGenerator.load(
        resolve_model_path(model.path),
        adapter=model.adapter,
        device=model.device,
        dtype=model.dtype,
        context_window=model.context_window,
        max_batch_size=model.max_batch_size,
        max_queue=model.max_queue,
        quantize=model.quantize,
    )


async def open_store(settings: BotSettings) -> Store:
    """SQLite, or PostgreSQL when ``[storage] url`` names it (core.storage.open_store)."""
    from core.storage import open_store as configured_store

    if settings.storage.url is None:
        settings.database_path().parent.mkdir(parents=True, exist_ok=True)
    return configured_store(settings)


def load_personas(settings: BotSettings) -> PersonaLibrary:
    """The bot's persona library; ConfigError when ``personas.default`` is not in it."""
    folders = [BUNDLED_PERSONAS] + [settings.resolve_path(folder) for folder in settings.personas.dirs]
    personas = PersonaLibrary.load(folders)
    if settings.personas.default not in personas:
        raise ConfigError(
            f"{settings.source}: personas.default: unknown persona {settings.personas.default!r}"
            f" (known: {', '.join(personas.names())})"
        )
    problem = reply_reserve_problem(settings, personas)  # before any model loads
    if problem:
        raise ConfigError(f"{settings.source}: model.generation.max_new_tokens: {problem}")
    return personas


def select_features(settings: BotSettings) -> list[Feature]:
    if settings.features is None:
        return list(FEATURES.values())
    unknown = [name for name in settings.features if name not in FEATURES]
    if unknown:
        raise ConfigError(
            f"{settings.source or 'bot file'}: features: unknown feature(s) {unknown} (known: {', '.join(FEATURES)})"
        )
    return [FEATURES[name] for name in settings.features]


async def setup_core(bot: Runtime, stack: AsyncExitStack) -> None:
    """What every bot has: the recovery, access, limits and input middlewares, the built-in
    commands with authorization as a filter, and the command and chat routes."""
    seams, limits = bot.seams, bot.settings.limits
    if bot.settings.storage.url is not None and not bot.settings.storage.url.startswith("sqlite:"):
        # A shared store (several processes): one process at a time per conversation.
        seams.middlewares.add("recovery", "conversation_lease", ConversationLease(bot.store))
    seams.middlewares.add("recovery", "dedupe", ResumingDedupe(bot.store, bot.chat))
    seams.middlewares.add("access", "drop_banned", DropBanned(bot.store))
    seams.middlewares.add("access", "locale", ChooseLocale(bot.store))
    access = bot.settings.access
    if access.restricted:  # allow lists or pairing; the default bot stays open
        pairing = Pairing(bot.store, access.pairing_code_ttl_s) if access.pairing else None
        seams.middlewares.add("access", "allow_list", AllowList(access, bot.store, bot.is_admin, pairing))
        if pairing is not None:
            seams.commands.add(approve_spec(pairing))
    if access.bots:  # bots the bot answers, a few turns in a row at most (core/etiquette.py)
        seams.middlewares.add("access", "bot_turns", BotTurns(access.bots, limits.max_bot_replies))
    seams.middlewares.add(
        "limits",
        "rate_limit",
        RateLimiter(
            limits.user_messages_per_minute, limits.user_burst, limits.chat_messages_per_minute, limits.chat_burst,
            on_limited=bot.metrics.rate_limited.inc,
            store=bot.store,  # shared by the bot's processes, kept across restarts
        ),
    )
    seams.middlewares.add(
        "limits", "merge_bursts",
        BurstMerger(bot.store, limits.merge_window_s, limits.dm_merge_window_s, limits.on_new_message),
        before="rate_limit",  # a burst counts once
    )
    if limits.channel_cooldown_s > 0:
        seams.middlewares.add("limits", "channel_cooldown", ChannelCooldown(limits.channel_cooldown_s))
    seams.middlewares.add("input", "input_limits", limit_input(limits.max_input_chars))
    seams.commands.extend(builtin_commands(bot))
    seams.command_filters.append(RequireAdmin(bot.store, bot.is_admin, bot.is_chat_admin))
    command_route = CommandRoute(seams.commands, seams.command_filters, bot.store)
    seams.routes.add(Route("command", command_route.matches, command_route))
    seams.routes.add(Route("chat", lambda ctx: ctx.event.addressed_to_bot, bot.chat.handle))


async def load_embedder(spec: str | None, batch_size: int) -> Embedder:
    from core.personalization.embedder import SentenceTransformerEmbedder

    if spec is None:
        return await SentenceTransformerEmbedder.load(batch_size=batch_size)
    return await SentenceTransformerEmbedder.load(spec, batch_size=batch_size)


def build_app(
    settings: BotSettings,
    *,
    store: Store | None = None,
    generator: Generator | None = None,
    embedder: Embedder | None = None,
    features: Sequence[Feature] | None = None,
    admin_policies: Mapping[str, AdminPolicy] | None = None,
    metrics: Metrics | None = None,
) -> App:
    """An App for ``settings``; given ports replace the ones the settings name (tests, benchmarks).
    ``metrics``: where the bot counts (the operator's, served on /metrics); default a fresh one."""
    personas = load_personas(settings)
    chosen = select_features(settings) if features is None else list(features)

    async def given_or_opened_store() -> Store:
        return store if store is not None else await open_store(settings)

    async def given_or_built_generator() -> Generator:
        return generator if generator is not None else await build_generator(settings)

    return App(
        settings,
        personas=personas,
        open_store=given_or_opened_store,
        open_generator=given_or_built_generator,
        features=[setup_core, *chosen],
        embedder=embedder,
        load_embedder=load_embedder,
        admin_policies=admin_policies,
        metrics=metrics,
    )
