"""Publish the core's commands in Telegram's command menu (setMyCommands).

User commands go to the default scope. Admin commands live in the core's ``admin``
group (``/admin ban USER``), so admins get one extra ``/admin`` entry, published only
in each admin's private chat (BotCommandScopeChat): other users never see it.
Telegram command names allow only ``a-z0-9_``; a core name with ``-`` is published
with ``_`` and mapped back by :func:`command_aliases`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from core.commands import ADMIN_GROUP, CommandRegistry

log = logging.getLogger(__name__)

MAX_COMMANDS = 100  # Telegram's limit per scope
MAX_DESCRIPTION = 256


def telegram_name(name: str) -> str:
    return name.replace("-", "_")


def command_aliases(registry: CommandRegistry) -> dict[str, str]:
    """Telegram menu name -> core name, for the names that differ."""
    return {telegram_name(spec.name): spec.name for spec in registry.user_commands() if "-" in spec.name}


def user_menu(registry: CommandRegistry) -> list[BotCommand]:
    return [BotCommand(telegram_name(spec.name), spec.description) for spec in registry.user_commands()][:MAX_COMMANDS]


def admin_menu(registry: CommandRegistry) -> list[BotCommand]:
    """The user menu plus ``/admin`` listing the admin sub-commands."""
    admin = registry.admin_commands()
    if not admin:
        return user_menu(registry)
    description = "Admin: " + ", ".join(spec.name for spec in admin)
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 1] + "…"
    return user_menu(registry)[: MAX_COMMANDS - 1] + [BotCommand(ADMIN_GROUP, description)]


def admin_chat_ids(admins: Iterable[str]) -> list[int]:
    """Numeric Telegram user ids among platform-qualified admin ids (their private chat ids)."""
    ids = []
    for admin in sorted(admins):
        platform, _, local = admin.partition(":")
        if platform == "telegram" and local.isdigit():
            ids.append(int(local))
    return ids


async def publish_commands(bot: Bot, registry: CommandRegistry, admins: Iterable[str]) -> None:
    """Failures are logged, never fatal: the commands work typed even without the menu."""
    try:
        await bot.set_my_commands(user_menu(registry), scope=BotCommandScopeDefault())
    except TelegramError as error:
        log.warning("could not publish the command menu: %s", error)
        return
    menu = admin_menu(registry)
    for chat_id in admin_chat_ids(admins):
        try:
            await bot.set_my_commands(menu, scope=BotCommandScopeChat(chat_id))
        except TelegramError as error:  # e.g. the admin has not started the bot yet
            log.warning("could not publish admin commands for telegram:%s: %s", chat_id, error)
