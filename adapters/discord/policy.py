"""Discord's admin policy: members of the bot file's ``admin_roles`` are admins there."""

from __future__ import annotations

from adapters.discord.settings import DiscordSettings
from core.events import IncomingMessage
from core.seams import AdminPolicy


def role_admin_policy(options: DiscordSettings) -> AdminPolicy:
    roles = frozenset(options.admin_roles)

    def has_admin_role(event: IncomingMessage) -> bool:
        return bool(roles.intersection(event.user_roles))

    return has_admin_role
