"""Typed settings: one bot file (TOML) validated into one :class:`BotSettings` object.

Secrets never live in the file: it names environment variables (``token_env``,
``api_key_env``) and :meth:`BotSettings.secret` reads them. ``repr`` and
:meth:`BotSettings.redacted_dump` never show a secret's value.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from core.errors import ConfigError
from core.events import GenerationParams, split_qualified

BUILTIN_MODEL = "builtin:default"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationSettings(_Section):
    max_new_tokens: int = Field(96, ge=1, le=8192)
    temperature: float = Field(0.8, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0)
    repetition_penalty: float = Field(1.15, ge=0.5, le=5.0)
    stop: tuple[str, ...] = ()
    timeout_s: float = Field(60.0, gt=0)

    def to_params(self) -> GenerationParams:
        return GenerationParams(**self.model_dump())


class ModelSettings(_Section):
    """Which model answers. ``path`` is a local folder, a hub id, or ``builtin:default``."""

    backend: Literal["transformers", "openai", "scripted"] = "transformers"
    path: str = BUILTIN_MODEL
    adapter: str | None = None  # LoRA adapter folder loaded on top of ``path``
    device: str = "auto"
    dtype: str = "auto"
    context_window: int | None = Field(None, ge=16)
    # openai backend
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    tokenizer: str | None = None
    max_in_flight: int = Field(8, ge=1, le=1024)
    # transformers backend: concurrent generation
    max_batch_size: int = Field(16, ge=1, le=1024)
    max_queue: int = Field(256, ge=1)
    quantize: Literal["int8"] | None = None  # int8 linear layers on a CPU (docs/performance.md)
    # scripted backend (demos and tests): replies cycled in order
    replies: tuple[str, ...] = ()
    generation: GenerationSettings = GenerationSettings()

    @model_validator(mode="after")
    def _quantize_needs_a_cpu_transformers_model(self) -> "ModelSettings":
        if self.quantize and (self.backend != "transformers" or self.device.startswith("cuda")):
            where = f"backend {self.backend!r}" if self.backend != "transformers" else f"device {self.device!r}"
            raise ValueError(f"model.quantize = {self.quantize!r} needs backend 'transformers' on a CPU, not {where}")
        return self


class StorageSettings(_Section):
    path: str | None = None  # default: $PERSONABOT_DATA_DIR/<bot name>.db
    retention_days: int | None = Field(None, ge=1)
    # PostgreSQL for several processes: "postgresql://user@host:5432/db" (core/storage).
    # The password comes from the env var named by password_env, or PGPASSWORD/.pgpass.
    url: str | None = None
    password_env: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://", "sqlite:")):
            raise ValueError("expected postgresql://user@host:5432/database (or sqlite:PATH)")
        return url

    @model_validator(mode="after")
    def _one_database(self) -> "StorageSettings":
        if self.url is not None and self.path is not None:
            raise ValueError("set either url (PostgreSQL) or path (SQLite), not both")
        return self


class LimitsSettings(_Section):
    max_input_chars: int = Field(4000, ge=1)
    history_messages: int = Field(40, ge=0)
    user_messages_per_minute: float = Field(20, gt=0)
    user_burst: int = Field(5, ge=1)
    chat_messages_per_minute: float = Field(60, gt=0)
    chat_burst: int = Field(20, ge=1)
    user_daily_quota: int | None = Field(None, ge=1)
    max_concurrent_generations: int = Field(32, ge=1)


class ConsoleSettings(_Section):
    enabled: bool = True


class TelegramSettings(_Section):
    """The ``[telegram]`` section; every field is documented in docs/telegram.md."""

    enabled: bool = False
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


class DiscordSettings(_Section):
    """The ``[discord]`` section; ids are Discord snowflakes written as strings or numbers."""

    enabled: bool = False
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

    @model_validator(mode="after")
    def _one_sync_target(self) -> "DiscordSettings":
        if self.sync_guilds and self.sync_global:
            raise ValueError("set sync_guilds (development) or sync_global, not both: both lists would show")
        return self


class PersonaSelection(_Section):
    default: str = "companion"
    dirs: tuple[str, ...] = ()  # extra persona folders; the bundled personas/ always load


class BotSettings(_Section):
    name: str = Field("personabot", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    admins: tuple[str, ...] = ()  # platform-qualified ids: "telegram:123", "discord:456"
    personas: PersonaSelection = PersonaSelection()
    model: ModelSettings = ModelSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    console: ConsoleSettings = ConsoleSettings()
    telegram: TelegramSettings = TelegramSettings()
    discord: DiscordSettings = DiscordSettings()
    # Sections owned by optional features; each feature validates its own part.
    safety: dict[str, Any] = Field(default_factory=dict)
    personalization: dict[str, Any] = Field(default_factory=dict)
    catalog: list[dict[str, Any]] = Field(default_factory=list)
    plugins: dict[str, Any] = Field(default_factory=dict)

    source: Path | None = Field(None, exclude=True)

    @field_validator("admins")
    @classmethod
    def _qualified_ids(cls, admins: tuple[str, ...]) -> tuple[str, ...]:
        for admin in admins:
            split_qualified(admin)
        return admins

    def all_admins(self) -> frozenset[str]:
        """Admins from the top level and every adapter section."""
        return frozenset(self.admins) | {f"telegram:{a}" if ":" not in a else a for a in self.telegram.admins} | {
            f"discord:{a}" if ":" not in a else a for a in self.discord.admins
        }

    def resolve_path(self, value: str) -> Path:
        """Relative paths in a bot file are relative to the file's folder."""
        path = Path(value).expanduser()
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path

    def database_path(self) -> Path:
        if self.storage.path:
            return self.resolve_path(self.storage.path)
        return data_dir() / f"{self.name}.db"

    @staticmethod
    def secret(env_name: str | None, what: str) -> str:
        """Read a secret from the environment; ConfigError names the variable, never a value."""
        value = os.environ.get(env_name or "")
        if not value:
            raise ConfigError(f"{what}: environment variable {env_name!r} is not set")
        return value

    def redacted_dump(self) -> dict[str, Any]:
        """The settings as data, for `personabot config show`; secrets are never included."""
        return self.model_dump(mode="json")


def data_dir() -> Path:
    """Where databases live by default: $PERSONABOT_DATA_DIR or ~/.local/share/personabot."""
    configured = os.environ.get("PERSONABOT_DATA_DIR")
    base = Path(configured) if configured else Path.home() / ".local" / "share" / "personabot"
    return base.expanduser()


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem, naming the file and the dotted field."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source}: {field}: {item['msg']}")
    return "\n".join(lines)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def load_bot_settings(path: str | Path) -> BotSettings:
    """Read and validate a bot file. Raises ConfigError naming file and field."""
    path = Path(path)
    data = read_toml(path)
    try:
        settings = BotSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from None
    return settings.model_copy(update={"source": path.resolve()})


def default_bot_file() -> Path:
    """The demo bot shipped with the package."""
    return Path(__file__).resolve().parent.parent / "bots" / "demo.toml"
