"""Publish the core's commands in Telegram's command menu (setMyCommands).

User commands go to the default scope. Admin commands live in the core's ``admin``
group (``/admin ban USER``), so admins get one extra ``/admin`` entry, published only
in each admin's private chat (BotCommandScopeChat): other users never see it.
Telegram command names allow only ``a-z0-9_``; a core name with ``-`` is published
with ``_`` and mapped back by :func:`command_aliases`.

Descriptions are published in the bot's language for everyone, and once more per
catalog language with ``language_code`` (Telegram shows users the menu of their app's
language; it takes two-letter codes, so Simplified Chinese is ``zh``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from core.commands import ADMIN_GROUP, CommandRegistry
from core.i18n import SOURCE_LOCALE, available_locales, t

log = logging.getLogger(__name__)

MAX_COMMANDS = 100  # Telegram's limit per scope
MAX_DESCRIPTION = 256


def telegram_name(name: str) -> str:
    return name.replace("-", "_")


def command_aliases(registry: CommandRegistry) -> dict[str, str]:
    """Telegram menu name -> core name, for the names that differ."""
    return {telegram_name(spec.name): spec.name for spec in registry.user_commands() if "-" in spec.name}


def user_menu(registry: CommandRegistry, locale: str = SOURCE_LOCALE) -> list[BotCommand]:
    return [
        BotCommand(telegram_name(spec.name), t(locale, spec.description)[:MAX_DESCRIPTION]) for spec in registry.user_commands()
    ][:MAX_COMMANDS]


def admin_menu(registry: CommandRegistry, locale: str = SOURCE_LOCALE) -> list[BotCommand]:
    """The user menu plus ``/admin`` listing the admin sub-commands."""
    admin = registry.admin_commands()
    if not admin:
        return user_menu(registry, locale)
    description = t(locale, "Admin: {commands}", commands=", ".join(spec.name for spec in admin))
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 1] + "…"
    return user_menu(registry, locale)[: MAX_COMMANDS - 1] + [BotCommand(ADMIN_GROUP, description)]


def menu_languages(default_locale: str) -> list[tuple[str, str | None]]:
    """(locale, Telegram language_code) pairs: the default menu first, then one per catalog."""
    return [(default_locale, None)] + [(locale, locale.split("_")[0]) for locale in available_locales()]


def admin_chat_ids(admins: Iterable[str]) -> list[int]:
    """Numeric Telegram user ids among platform-qualified admin ids (their private chat ids)."""
    ids = []
    for admin in sorted(admins):
        platform, _, local = admin.partition(":")
        if platform == "telegram" and local.isdigit():
            ids.append(int(local))
    return ids


async def publish_commands(
    bot: Bot, registry: CommandRegistry, admins: Iterable[str], default_locale: str = SOURCE_LOCALE
) -> None:
    """Failures are logged, never fatal: the commands work typed even without the menu."""
    admins = list(admins)
    for locale, language_code in menu_languages(default_locale):
        try:
            await bot.set_my_commands(user_menu(registry, locale), scope=BotCommandScopeDefault(), language_code=language_code)
        except TelegramError as error:
            log.warning("could not publish the command menu (%s): %s", language_code or "default", error)
            return
        menu = admin_menu(registry, locale)
        for chat_id in admin_chat_ids(admins):
            try:
                await bot.set_my_commands(menu, scope=BotCommandScopeChat(chat_id), language_code=language_code)
            except TelegramError as error:  # e.g. the admin has not started the bot yet
                log.warning("could not publish admin commands for telegram:%s: %s", chat_id, error)
