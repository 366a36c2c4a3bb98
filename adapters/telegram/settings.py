"""The ``[telegram]`` section of a bot file (registered with core in adapters/platforms.py)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.errors import ConfigError
from core.settings import BotSettings, PlatformSection

_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramSettings(PlatformSection):
    """The ``[telegram]`` section; every field is documented in docs/telegram.md."""

    token_env: str = "TELEGRAM_BOT_TOKEN"
    api_base_url: str | None = None  # root of a self-hosted Bot API server (default: Telegram's)
    admins: tuple[str, ...] = ()  # "telegram:<user id>" (a bare id means the same)
    reply_all_chats: tuple[str, ...] = ()  # group chat ids where every message is answered
    private_streaming: Literal["draft", "edit", "final"] = "draft"
    group_streaming: Literal["edit", "final"] = "edit"
    private_edit_interval: float = Field(1.0, gt=0)
    group_edit_interval: float = Field(3.0, gt=0)
    # Outgoing flood limits (Telegram's documented defaults) and 429 retries.
    chat_messages_per_second: float = Field(1.0, gt=0)
    group_messages_per_minute: float = Field(20.0, gt=0)
    overall_messages_per_second: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    max_concurrent_updates: int = Field(64, ge=1, le=4096)
    poll_timeout_s: int = Field(30, ge=0, le=50)
    drop_pending_updates: bool = False
    recovery_window_s: float = Field(3600.0, ge=0)  # re-answer turns a crash left unanswered
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None  # public HTTPS URL Telegram posts to
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(8443, ge=1, le=65535)
    webhook_path: str = "/telegram"
    webhook_secret_env: str | None = None
    shutdown_grace_s: float = Field(10.0, gt=0)
    # A group's own administrators (getChatAdministrators, cached) are bot admins in that group only.
    group_admins_are_admins: bool = False
    group_admins_ttl_s: float = Field(300.0, ge=1, le=86400)

    @field_validator("admins")
    @classmethod
    def _telegram_admins(cls, admins: tuple[str, ...]) -> tuple[str, ...]:
        for admin in admins:
            local = admin.removeprefix("telegram:")
            if not local.lstrip("-").isdigit():
                raise ValueError(f"{admin!r} is not a Telegram user id (expected telegram:<number>)")
        return admins

    @field_validator("reply_all_chats", mode="before")
    @classmethod
    def _chat_ids(cls, chats: Any) -> Any:
        """Chat ids as Telegram gives them (``-100…`` for supergroups), ``telegram:`` optional."""
        if not isinstance(chats, (list, tuple)):
            return chats
        ids = tuple(str(chat).removeprefix("telegram:") for chat in chats)
        for chat in ids:
            if not chat.lstrip("-").isdigit():
                raise ValueError(f"{chat!r} is not a Telegram chat id")
        return ids

    @field_validator("webhook_path")
    @classmethod
    def _path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with '/'")
        return path

    @model_validator(mode="after")
    def _webhook_needs(self) -> "TelegramSettings":
        if self.mode == "webhook" and not (self.webhook_url and self.webhook_secret_env):
            raise ValueError("mode 'webhook' needs webhook_url and webhook_secret_env")
        return self

    def qualified_admins(self) -> frozenset[str]:
        return frozenset(admin if ":" in admin else f"telegram:{admin}" for admin in self.admins)

    def secret_envs(self) -> tuple[str, ...]:
        return tuple(name for name in (self.token_env, self.webhook_secret_env) if name)


def read_secrets(settings: BotSettings) -> tuple[str, str | None]:
    """The token (and webhook secret) from the environment, checked for shape, never echoed."""
    telegram = settings.platform(TelegramSettings)
    token = BotSettings.secret(telegram.token_env, "telegram.token_env").strip()
    if not _TOKEN.match(token):
        raise ConfigError(f"telegram.token_env: ${telegram.token_env} does not look like a bot token (123456:ABC…)")
    secret = None
    if telegram.mode == "webhook":
        secret = BotSettings.secret(telegram.webhook_secret_env, "telegram.webhook_secret_env").strip()
        if not _WEBHOOK_SECRET.match(secret):
            raise ConfigError(
                f"telegram.webhook_secret_env: ${telegram.webhook_secret_env} must be 1-256 characters of A-Z a-z 0-9 _ -"
            )
    return token, secret
