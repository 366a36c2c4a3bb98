"""``setup_safety``: the safety feature, attached at startup through the declared seams.

It adds, by stage::

    limits:     rate_limit replaced by the abuse limiter (adds the daily quota)
    moderation: moderate_input, audit_commands

and: the output reply filter, the global generation cap around the Generator (a
generator wrapper), the bot's secrets in the process's log mask, and ``/admin audit``
and ``/admin safety``.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from core.commands import CommandSpec
from core.dispatcher import Context
from core.errors import ConfigError
from core.i18n import N_
from core.logmask import masking_env, secret_env_names
from core.ports import Generator
from core.runtime import Runtime
from core.safety.audit import AuditCommands, audit_command
from core.safety.config import SafetySettings
from core.safety.limits import AbuseLimiter, GenerationLimiter
from core.safety.moderation import InputModeration, Moderator, OutputModeration, TextClassifier

log = logging.getLogger(__name__)


async def setup_safety(bot: Runtime, stack: AsyncExitStack) -> None:
    settings = SafetySettings.from_bot(bot.settings.safety, bot.settings.source)
    stack.enter_context(masking_env(secret_env_names(bot.settings, settings.secret_envs)))

    moderation = settings.moderation
    unknown = sorted(name for name in moderation.personas if name not in bot.personas)
    if unknown:
        raise ConfigError(f"{bot.settings.source}: safety.moderation.personas: unknown persona(s) {unknown}")
    classifier = None
    if moderation.classifier is not None:
        path = str(bot.settings.resolve_path(moderation.classifier.path))
        classifier = await TextClassifier.load(path, moderation.classifier)
    actions = bot.metrics.moderation_actions
    moderator = Moderator(moderation, classifier, on_action=lambda direction, action: actions.labels(direction, action).inc())

    limits = bot.settings.limits
    limiter = AbuseLimiter(
        limits, exempt=bot.is_admin if settings.exempt_admins else (lambda event: False),
        on_limited=bot.metrics.rate_limited.inc, store=bot.store,
    )
    seams = bot.seams
    seams.middlewares.replace("rate_limit", limiter)
    seams.middlewares.add("moderation", "moderate_input", InputModeration(moderator, bot.store, bot.chat))
    seams.middlewares.add("moderation", "audit_commands", AuditCommands(settings.audited_commands, seams.commands, bot.store))
    seams.reply_filters.append(OutputModeration(moderator, bot.store))

    caps: list[GenerationLimiter] = []

    def cap_generations(inner: Generator) -> Generator:
        caps.append(GenerationLimiter(inner, limits.max_concurrent_generations, settings.busy_wait_s))
        return caps[-1]

    seams.generator_wrappers.append(cap_generations)

    async def admin_safety(ctx: Context, args: tuple[str, ...]) -> str:
        counts = moderator.counts
        lines = [ctx.t("Moderated since start:")]
        lines += [f"  {name}: {count}" for name, count in sorted(counts.items())] or ["  " + ctx.t("nothing")]
        quota = limits.user_daily_quota
        generation = caps[0]
        lines += [
            ctx.t(
                "Rate limits: {user_rate}/min per user (burst {user_burst}), {chat_rate}/min per chat (burst {chat_burst})",
                user_rate=f"{limits.user_messages_per_minute:g}", user_burst=limits.user_burst,
                chat_rate=f"{limits.chat_messages_per_minute:g}", chat_burst=limits.chat_burst,
            ),
            ctx.t(
                "Daily quota: {quota}; admins exempt: {exempt}",
                quota=quota if quota is not None else ctx.t("none"), exempt=settings.exempt_admins,
            ),
            ctx.t(
                "Generations: {running} running, {waiting} waiting, limit {limit}",
                running=generation.in_flight, waiting=generation.waiting, limit=generation.limit,
            ),
        ]
        return "\n".join(lines)

    seams.commands.extend(
        [
            audit_command(bot.store),
            CommandSpec("safety", N_("Moderation counts and abuse limits"), admin_safety, admin_only=True, private=True),
        ]
    )
