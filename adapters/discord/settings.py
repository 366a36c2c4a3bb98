"""The ``[discord]`` section of a bot file (registered with core in adapters/platforms.py)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from core.settings import PlatformSection


class DiscordSettings(PlatformSection):
    """The ``[discord]`` section; ids are Discord snowflakes written as strings or numbers."""

    token_env: str = "DISCORD_BOT_TOKEN"
    api_base_url: str | None = Field(None, pattern=r"^https?://")  # a Discord-compatible server or proxy
    admins: tuple[str, ...] = ()  # user ids, bare or as "discord:<id>"
    admin_roles: tuple[str, ...] = ()  # role ids whose members are admins
    channels: tuple[str, ...] = ()  # channel ids where every message (and its threads) is answered
    sync_guilds: tuple[str, ...] = ()  # publish slash commands to these servers at start (instant)
    sync_global: bool = False  # publish slash commands globally at start (Discord may take a while)
    edit_interval: float = Field(1.0, gt=0)  # seconds between edits of a streamed reply
    stream: bool = True  # False: send each reply once, complete
    shutdown_grace_s: float = Field(10.0, gt=0)  # replies in progress get this long at shutdown
    # Sharding (docs/scaling.md): unset, one process runs every shard Discord recommends.
    shard_count: int | None = Field(None, ge=1, le=65536)  # shards over all processes
    shard_ids: tuple[int, ...] | None = None  # the slice this process runs (needs shard_count)

    @field_validator("admins", "admin_roles", "channels", "sync_guilds", mode="before")
    @classmethod
    def _snowflakes(cls, values: Any, info: ValidationInfo) -> tuple[str, ...]:
        if not isinstance(values, (list, tuple)):
            raise ValueError("expected a list of Discord ids")
        prefix = "discord:" if info.field_name == "admins" else ""
        checked = tuple(str(value).strip() for value in values)
        for value in checked:
            local = value.removeprefix(prefix) if prefix else value
            if not (local.isascii() and local.isdigit()):
                raise ValueError(f"{value!r} is not a Discord id (digits{', or discord:<id>' if prefix else ''})")
        return checked

    @field_validator("shard_ids")
    @classmethod
    def _shard_slice(cls, ids: tuple[int, ...] | None, info: ValidationInfo) -> tuple[int, ...] | None:
        if ids is None:
            return None
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("set shard_count too (the number of shards over all processes)")
        if not ids:
            raise ValueError("list at least one shard id, or leave shard_ids out to run them all")
        outside = [shard for shard in ids if not 0 <= shard < count]
        if outside:
            raise ValueError(f"{outside}: shard ids go from 0 to below shard_count ({count})")
        if len(set(ids)) != len(ids):
            raise ValueError("a shard id is listed twice")
        return ids

    @model_validator(mode="after")
    def _one_sync_target(self) -> "DiscordSettings":
        if self.sync_guilds and self.sync_global:
            raise ValueError("set sync_guilds (development) or sync_global, not both: both lists would show")
        return self

    def qualified_admins(self) -> frozenset[str]:
        return frozenset(admin if ":" in admin else f"discord:{admin}" for admin in self.admins)

    def secret_envs(self) -> tuple[str, ...]:
        return (self.token_env,)
