"""``setup_plugins``: the plugins feature, attached through the declared seams.

It publishes the :class:`~core.plugins.manager.PluginManager` as ``services.plugins``,
the plugins' user data (``user_data``), their catalog items (``catalog_sources``) and
``/admin plugins``; the manager loads and wires the plugins themselves.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from core.commands import CommandSpec
from core.dispatcher import Context
from core.i18n import N_
from core.plugins.manager import PluginManager
from core.runtime import Runtime


def admin_plugins_command(manager: PluginManager) -> CommandSpec:
    async def admin_plugins(ctx: Context, args: tuple[str, ...]) -> str:
        return describe_plugins(manager) or ctx.t("No plugins are enabled.")

    return CommandSpec(
        "plugins", N_("List the bot's plugins and their state"), admin_plugins, admin_only=True, private=True, owner="plugins"
    )


def describe_plugins(manager: PluginManager) -> str:
    lines = []
    for status in manager.describe():
        line = f"{status.name}: {status.state} ({status.origin})"
        if status.commands:
            line += " — " + ", ".join(status.commands)
        if status.reason:
            line += f" — {status.reason}"
        loaded = manager.loaded.get(status.name)
        if loaded and loaded.failures:
            line += f" — {loaded.failures} failure(s) since start, see the log"
        lines.append(line)
    return "\n".join(lines)


class PluginUserData:
    """The plugins as one holder of user data (the ``user_data`` seam): export and forget."""

    name = "plugins"

    def __init__(self, manager: PluginManager) -> None:
        self._manager = manager

    async def export_user(self, user_id: str) -> dict[str, Any]:
        return await self._manager.export_user(user_id)

    async def forget_user(self, user_id: str) -> dict[str, int]:
        counts = await self._manager.forget_user(user_id)
        return {f"plugin:{name}": count for name, count in counts.items()}


async def setup_plugins(bot: Runtime, stack: AsyncExitStack) -> None:
    """The plugins feature: load every plugin the bot file enables (core/plugins/manager.py)."""
    manager = PluginManager(bot)
    seams = bot.seams
    seams.services.plugins = manager
    seams.user_data.append(PluginUserData(manager))
    seams.catalog_sources.append(manager.catalog)
    seams.commands.add(admin_plugins_command(manager))
    await manager.start(stack)


async def setup_plugin_privacy(bot: Runtime, stack: AsyncExitStack) -> None:
    """The plugins' export and forget hooks only (``personabot users``): nothing else is wired, no job runs."""
    manager = PluginManager(bot)
    manager.load_privacy_hooks()
    bot.seams.user_data.append(PluginUserData(manager))
