"""Discord adapter (discord.py): server channels, threads, DMs and slash commands; see docs/discord.md."""
