"""Typed settings: one bot file (TOML) validated into one :class:`BotSettings` object.

Secrets never live in the file: it names environment variables (``token_env``,
``api_key_env``) and :meth:`BotSettings.secret` reads them. ``repr`` and
:meth:`BotSettings.redacted_dump` never show a secret's value.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core.errors import ConfigError
from core.events import GenerationParams, split_qualified
from core.http.settings import HttpSettings
from core.tools.settings import McpSettings, ToolsSettings
from core.web.settings import WebSettings

BUILTIN_MODEL = "builtin:default"
P = TypeVar("P", bound="PlatformSection")
PLATFORM_ERROR = "platform_section"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationSettings(_Section):
    max_new_tokens: int = Field(96, ge=1, le=8192)
    temperature: float = Field(0.8, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0)
    # 1.0: a penalty above 1 falls on every token already in the prompt, the memory block's
    # and passages' included; at 1.2 the bundled model answered "Rexwix" for a dog called Rex.
    repetition_penalty: float = Field(1.0, ge=0.5, le=5.0)
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
    tools: bool = True  # offer [tools] to the model (transformers: when its chat template takes tools)
    vision: bool = False  # the model reads images (openai: image content parts)
    max_image_bytes: int = Field(5_000_000, ge=1)  # larger photos and attachments are not fetched
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
    max_bot_replies: int = Field(3, ge=1)  # consecutive replies to bots in one chat until a human speaks
    channel_cooldown_s: float = Field(0.0, ge=0)  # groups: at most one chat turn per channel per this many s
    # Bursts (core/bursts.py): one user's messages in one chat within the window are one turn.
    merge_window_s: float = Field(2.0, ge=0, le=60)  # in groups
    dm_merge_window_s: float = Field(0.0, ge=0, le=60)  # in DMs (off: a DM answers each message)
    on_new_message: Literal["queue", "restart"] = "queue"  # a message while the reply streams: wait, or restart it


class PromptSettings(_Section):
    """``[prompt]``: how the token budget is shared (core/prompt.py keeps parts in this order)."""

    # part -> share of the prompt's tokens it may claim first, e.g. {memory = 0.2, passage = 0.3}
    min_shares: dict[Literal["memory", "passage", "recent", "examples", "history"], float] = Field(default_factory=dict)

    @field_validator("min_shares")
    @classmethod
    def _shares(cls, shares: dict[str, float]) -> dict[str, float]:
        if any(not 0 <= share <= 1 for share in shares.values()):
            raise ValueError("each share is between 0 and 1")
        if sum(shares.values()) > 1:
            raise ValueError(f"the shares add up to {sum(shares.values()):g}; at most 1")
        return shares


class PlatformSection(_Section):
    """Base of a platform adapter's bot-file section (``[telegram]``, ``[discord]``…).

    Adapters define their own subclass beside their code and register it with
    :func:`register_platform_section`; core knows only this base.
    """

    enabled: bool = False

    def qualified_admins(self) -> frozenset[str]:
        """Admins this section names, as platform-qualified ids."""
        return frozenset()

    def secret_envs(self) -> tuple[str, ...]:
        """Names of the environment variables that hold this platform's secrets (for log masking)."""
        return ()


_PLATFORM_SECTIONS: dict[str, type[PlatformSection]] = {}


def register_platform_section(name: str, model: type[PlatformSection]) -> None:
    """The registration seam: an adapter declares the bot-file section it owns."""
    known = _PLATFORM_SECTIONS.get(name)
    if known is not None and known is not model:
        raise ValueError(f"platform section [{name}] is registered twice ({known.__name__}, {model.__name__})")
    _PLATFORM_SECTIONS[name] = model


class AccessSettings(_Section):
    """Who may talk to the bot (core/access.py). Empty lists and no pairing: everyone (the default)."""

    users: tuple[str, ...] = ()  # platform-qualified user ids: "telegram:123", "discord:456"
    chats: tuple[str, ...] = ()  # platform-qualified chat ids: "telegram:-100123", "discord:<channel id>"
    servers: tuple[str, ...] = ()  # platform-qualified server ids: "discord:<guild id>"
    pairing: bool = False  # unknown users in DMs get a one-time code; an admin approves it
    bots: tuple[str, ...] = ()  # other bots this bot answers (platform-qualified); any other bot: never
    pairing_code_ttl_s: float = Field(3600.0, ge=60, le=30 * 86400)

    @field_validator("users", "chats", "servers", "bots")
    @classmethod
    def _qualified(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for qualified in ids:
            split_qualified(qualified)
        return ids

    @property
    def restricted(self) -> bool:
        return bool(self.users or self.chats or self.servers or self.pairing)


class PersonaSelection(_Section):
    default: str = "companion"
    dirs: tuple[str, ...] = ()  # extra persona folders; the bundled personas/ always load
    members_switch_in_groups: bool = False  # else only admins switch a group's persona (core/persona_precedence.py)


class BotSettings(_Section):
    name: str = Field("personabot", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    language: str = "en"  # the bot's own words when the user and the platform name none (docs/i18n.md)
    admins: tuple[str, ...] = ()  # platform-qualified ids: "telegram:123", "discord:456"
    features: tuple[str, ...] | None = None  # default: every feature of core.bootstrap.FEATURES
    personas: PersonaSelection = PersonaSelection()
    model: ModelSettings = ModelSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    prompt: PromptSettings = PromptSettings()  # the token budget's minimum shares (core/prompt.py)
    access: AccessSettings = AccessSettings()  # allow lists and DM pairing (core/access.py)
    web: WebSettings = WebSettings()  # the operator console (core/web, docs/console.md)
    http: HttpSettings = HttpSettings()  # /healthz /readyz /metrics, off by default (core/http, docs/scaling.md)
    tools: ToolsSettings = ToolsSettings()  # what the model may call (core/tools, docs/tools.md)
    mcp: McpSettings = McpSettings()  # [[mcp.servers]] whose tools join the bot's
    # [console], [telegram], [discord]…: sections registered by the adapters (see PlatformSection).
    platforms: dict[str, PlatformSection] = Field(default_factory=dict)
    # Sections owned by optional features; each feature validates its own part.
    safety: dict[str, Any] = Field(default_factory=dict)
    personalization: dict[str, Any] = Field(default_factory=dict)
    catalog: list[dict[str, Any]] = Field(default_factory=list)
    plugins: dict[str, Any] = Field(default_factory=dict)

    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _gather_platform_sections(cls, data: Any) -> Any:
        """Top-level tables named like a registered platform become entries of ``platforms``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = dict(data.pop("platforms", None) or {})
        for name in _PLATFORM_SECTIONS:
            if name in data:
                given[name] = data.pop(name)
        data["platforms"] = given
        return data

    @field_validator("platforms", mode="before")
    @classmethod
    def _validate_platform_sections(cls, given: Any) -> dict[str, PlatformSection]:
        sections: dict[str, PlatformSection] = {}
        for name, model in _PLATFORM_SECTIONS.items():
            raw = given.get(name, {})
            try:
                sections[name] = raw if isinstance(raw, model) else model.model_validate(raw)
            except ValidationError as error:
                problems = "; ".join(
                    ".".join([name, *(str(part) for part in item["loc"])]) + f": {item['msg']}" for item in error.errors()
                )
                raise PydanticCustomError(PLATFORM_ERROR, "{problems}", {"problems": problems}) from None
        unknown = sorted(set(given) - set(_PLATFORM_SECTIONS))
        if unknown:
            raise ValueError(f"no adapter owns the section(s) {unknown}")
        return sections

    @field_validator("admins")
    @classmethod
    def _qualified_ids(cls, admins: tuple[str, ...]) -> tuple[str, ...]:
        for admin in admins:
            split_qualified(admin)
        return admins

    def platform(self, model: type[P]) -> P:
        """The validated section of one platform (its defaults when the file has none)."""
        for section in self.platforms.values():
            if type(section) is model:
                return section
        raise ConfigError(f"{model.__name__} is not a registered platform section")

    def enabled_platforms(self) -> list[str]:
        return [name for name, section in self.platforms.items() if section.enabled]

    def all_admins(self) -> frozenset[str]:
        """Admins from the top level and every platform section."""
        found = frozenset(self.admins)
        for section in self.platforms.values():
            found |= section.qualified_admins()
        return found

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
        """The settings as data, for `personabot config show`; secrets are never included
        (a password written into ``storage.url`` is taken out)."""
        data = self.model_dump(mode="json", exclude={"platforms"})
        data |= {name: section.model_dump(mode="json") for name, section in self.platforms.items()}
        if self.storage.url is not None:
            data["storage"]["url"] = _without_password(self.storage.url)
        return data


def _without_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user@host/db``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}" if parts.username else host))
    except ValueError:
        return "(unparsable URL)"


def data_dir() -> Path:
    """Where databases live by default: $PERSONABOT_DATA_DIR or ~/.local/share/personabot."""
    configured = os.environ.get("PERSONABOT_DATA_DIR")
    base = Path(configured) if configured else Path.home() / ".local" / "share" / "personabot"
    return base.expanduser()


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem, naming the file and the dotted field."""
    lines = []
    for item in error.errors():
        if item["type"] == PLATFORM_ERROR:  # already names its section and field
            lines += [f"{source}: {problem}" for problem in item["ctx"]["problems"].split("; ")]
            continue
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
