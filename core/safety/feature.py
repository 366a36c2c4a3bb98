"""``setup_safety``: the safety feature, attached to an App at startup.

After it, the dispatcher chain reads::

    dedupe → drop_banned (core/recovery.py) → rate_limit (+ daily quota)
      → input_limits → moderate_input → audit_commands → router

and the App also has: the output reply filter, the global generation cap around the
Generator, secret masking in every log record, and ``/admin audit`` and
``/admin safety``.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from core.commands import CommandSpec
from core.dispatcher import Context, Middleware
from core.errors import ConfigError
from core.safety.audit import AUDIT_COMMAND, AuditCommands
from core.safety.config import SafetySettings
from core.safety.limits import AbuseLimiter, GenerationLimiter
from core.safety.moderation import InputModeration, Moderator, OutputModeration, TextClassifier
from core.safety.secrets import SecretRedactor, secret_env_names

if TYPE_CHECKING:
    from core.app import App

log = logging.getLogger(__name__)


def _replace(chain: list[Middleware], name: str, replacement: Middleware) -> None:
    for index, middleware in enumerate(chain):
        if getattr(middleware, "__name__", None) == name:
            chain[index] = replacement
            return
    raise ConfigError(f"safety: the dispatcher chain has no {name!r} middleware to replace")


def _insert_after(chain: list[Middleware], name: str, additions: list[Middleware]) -> None:
    names = [getattr(middleware, "__name__", None) for middleware in chain]
    index = names.index(name) + 1 if name in names else len(chain)
    chain[index:index] = additions


async def setup_safety(app: "App", stack: AsyncExitStack) -> None:
    settings = SafetySettings.from_bot(app.settings.safety, app.settings.source)
    redactor = SecretRedactor.from_environment(secret_env_names(app.settings, settings.secret_envs))
    stack.callback(redactor.install())

    moderation = settings.moderation
    unknown = sorted(name for name in moderation.personas if name not in app.personas)
    if unknown:
        raise ConfigError(f"{app.settings.source}: safety.moderation.personas: unknown persona(s) {unknown}")
    classifier = None
    if moderation.classifier is not None:
        path = str(app.settings.resolve_path(moderation.classifier.path))
        classifier = await TextClassifier.load(path, moderation.classifier)
    moderator = Moderator(moderation, classifier)

    limits = app.settings.limits
    limiter = AbuseLimiter(limits, exempt=app.is_admin if settings.exempt_admins else (lambda event: False))
    chain = app.dispatcher.middlewares
    _replace(chain, "rate_limit", limiter)
    _insert_after(chain, "input_limits", [InputModeration(moderator), AuditCommands(settings.audited_commands)])
    app.chat.reply_filters.append(OutputModeration(moderator))

    generation = GenerationLimiter(app.generator, limits.max_concurrent_generations, settings.busy_wait_s)
    app.generator = generation

    async def admin_safety(ctx: Context, args: tuple[str, ...]) -> str:
        counts = moderator.counts
        lines = ["Moderated since start:"]
        lines += [f"  {name}: {count}" for name, count in sorted(counts.items())] or ["  nothing"]
        quota = limits.user_daily_quota
        lines += [
            f"Rate limits: {limits.user_messages_per_minute:g}/min per user (burst {limits.user_burst}), "
            f"{limits.chat_messages_per_minute:g}/min per chat (burst {limits.chat_burst})",
            f"Daily quota: {quota if quota is not None else 'none'}; admins exempt: {settings.exempt_admins}",
            f"Generations: {generation.in_flight} running, {generation.waiting} waiting, limit {generation.limit}",
        ]
        return "\n".join(lines)

    app.commands.extend(
        [
            AUDIT_COMMAND,
            CommandSpec("safety", "Moderation counts and abuse limits", admin_safety, admin_only=True, private=True),
        ]
    )
    log.info("safety: %s", " → ".join(app.dispatcher.describe()))
