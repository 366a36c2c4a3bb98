"""Discord adapter (discord.py): server channels, threads, DMs and slash commands.

``serve(app, stop)`` is what ``personabot run`` starts; see docs/discord.md.
"""

from adapters.discord.bot import DiscordBot, api_endpoint, login, run_bot, serve
from adapters.discord.commands import CoreCommandTree, build_commands, command_payloads, sync_commands
from adapters.discord.convert import PLATFORM, interaction_event, message_event
from adapters.discord.outbox import ChannelOutbox, InteractionOutbox, no_pings

__all__ = [
    "PLATFORM",
    "ChannelOutbox",
    "CoreCommandTree",
    "DiscordBot",
    "InteractionOutbox",
    "api_endpoint",
    "build_commands",
    "command_payloads",
    "interaction_event",
    "login",
    "message_event",
    "no_pings",
    "run_bot",
    "serve",
    "sync_commands",
]
