"""`personabot run --shard-count N --shard-ids 0,1`: one bot file, a Discord slice per process.

Container replicas share one bot file; the command line gives each its slice
(deploy/compose.yaml). The result is validated like the bot file's own ``[discord]``.
"""

from __future__ import annotations

from pydantic import ValidationError

from adapters.discord.settings import DiscordSettings
from core.errors import ConfigError
from core.settings import BotSettings


def parse_shard_ids(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> ``(0, 1)``; ConfigError naming the option otherwise."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--shard-ids: {text!r} is not a comma-separated list of shard numbers (e.g. 0,1)") from None


def with_shards(settings: BotSettings, shard_count: int | None, shard_ids: str | None) -> BotSettings:
    """``settings`` with the command line's shard slice in ``[discord]`` (unchanged without options)."""
    if shard_count is None and shard_ids is None:
        return settings
    discord = settings.platform(DiscordSettings)
    if not discord.enabled:
        raise ConfigError(f"{settings.source}: --shard-count/--shard-ids: [discord] is not enabled in this bot file")
    data = discord.model_dump()
    if shard_count is not None:
        data["shard_count"] = shard_count
    if shard_ids is not None:
        data["shard_ids"] = parse_shard_ids(shard_ids)
    try:
        sliced = DiscordSettings.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise ConfigError(f"--shard-count/--shard-ids: {problems}") from None
    platforms = {name: sliced if section is discord else section for name, section in settings.platforms.items()}
    return settings.model_copy(update={"platforms": platforms})
