"""The platforms personabot ships adapters for: their bot-file sections (registered with
core's settings at import), their admin policies and how each is served.

Importing this module is cheap: the platform libraries load only when a platform is served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from adapters.console.adapter import console_admin_policy
from adapters.console.settings import ConsoleSettings
from adapters.discord.policy import role_admin_policy
from adapters.discord.settings import DiscordSettings
from adapters.telegram.group_admins import BotApiAdmins, GroupAdmins, group_admins_feature
from adapters.telegram.settings import TelegramSettings, read_secrets
from core.app import Feature
from core.runtime import Runtime
from core.seams import AdminPolicy
from core.settings import BotSettings, register_platform_section

if TYPE_CHECKING:
    from core.http.operator import Operator

register_platform_section("console", ConsoleSettings)
register_platform_section("telegram", TelegramSettings)
register_platform_section("discord", DiscordSettings)



class Serve(Protocol):
    """An adapter's entry point: serve until ``stop``; report the connection to ``operator``."""

    def __call__(self, bot: Runtime, stop: asyncio.Event, operator: "Operator | None" = None) -> Awaitable[None]: ...


@dataclass(frozen=True)
class PlatformParts:
    """What the platforms add to every bot: admin policies, and the features those need."""

    admin_policies: dict[str, AdminPolicy]
    features: tuple[Feature, ...] = ()


def platform_parts(settings: BotSettings) -> PlatformParts:
    """Each platform's own rule for who is an admin, beside the bot file's ``admins``."""
    policies: dict[str, AdminPolicy] = {
        "console": console_admin_policy, "discord": role_admin_policy(settings.platform(DiscordSettings))
    }
    telegram = settings.platform(TelegramSettings)
    if not telegram.group_admins_are_admins:
        return PlatformParts(policies)
    lister = BotApiAdmins(settings)  # a group's administrators: admins of that group only
    group_admins = GroupAdmins(lister, telegram.group_admins_ttl_s)
    return PlatformParts(policies, (group_admins_feature(group_admins, lister),))


def check_secrets(settings: BotSettings) -> None:
    """Every enabled platform's secrets are set and well-formed: a ConfigError naming the
    field otherwise. Runs before anything is opened, so a missing token costs no model load."""
    if settings.platform(TelegramSettings).enabled:
        read_secrets(settings)
    discord = settings.platform(DiscordSettings)
    if discord.enabled:
        BotSettings.secret(discord.token_env, "discord.token_env")


def server(platform: str) -> Serve:
    """The ``serve(bot, stop)`` of one platform (imports its library)."""
    if platform == "telegram":
        from adapters.telegram.adapter import serve as serve_telegram

        return serve_telegram
    if platform == "discord":
        from adapters.discord.bot import serve as serve_discord

        return serve_discord
    from adapters.console.adapter import serve as serve_console

    async def console(bot: Runtime, stop: asyncio.Event, operator: "Operator | None" = None) -> None:
        if operator is not None:
            operator.health.report("console", None)  # the terminal is there from the start
        await serve_console(bot, stop=stop)

    return console
