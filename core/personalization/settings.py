"""The bot file's ``[personalization]`` section and ``[[catalog]]`` list, validated.

core/settings.py keeps both as raw data; this feature owns their meaning, so a typo
in them is reported here, naming the file and the dotted field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError
from core.catalog import CatalogItem
from core.settings import BotSettings, describe_validation_error

DEFAULT_EMBEDDER = "builtin:all-MiniLM-L6-v2"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonalizationSettings(_Model):
    enabled: bool = True
    # P(u,i) = (R_u . I_i) / (|R_u| |I_i| + alpha): alpha > 0 shrinks scores of weak or
    # diffuse profiles towards 0 and makes a zero vector score 0 instead of 0/0.
    alpha: float = Field(0.1, ge=0.0, le=100.0)
    embedder: str = DEFAULT_EMBEDDER  # or a local sentence-transformers folder
    embed_batch_size: int = Field(32, ge=1, le=1024)
    max_memories_in_prompt: int = Field(6, ge=0, le=50)
    recency_weight: float = Field(0.1, ge=0.0, le=10.0)  # added to P for a memory stated just now
    recency_half_life_days: float = Field(30.0, gt=0.0)
    lexical_weight: float = Field(0.6, ge=0.0, le=10.0)  # word overlap added to P for memories (0: off)
    max_memory_chars: int = Field(200, ge=20, le=2000)
    max_memories_per_user: int = Field(500, ge=1)
    interest_decay: float = Field(0.9, gt=0.0, lt=1.0)  # weight kept by the past at each new message
    recommend_default: int = Field(3, ge=1, le=20)
    recommend_max: int = Field(10, ge=1, le=50)
    seen_penalty: float = Field(0.5, ge=0.0, le=1.0)  # score factor per earlier showing of an item
    memory_default: bool = True  # consent "memory" for users who never chose
    link_code_ttl_s: float = Field(600.0, ge=30.0, le=86400.0)
    link_attempts_per_hour: int = Field(10, ge=1)
    forget_confirm_ttl_s: float = Field(120.0, ge=10.0, le=3600.0)
    retention_check_s: float = Field(3600.0, ge=1.0)



def load_personalization(settings: BotSettings) -> tuple[PersonalizationSettings, tuple[CatalogItem, ...]]:
    """Validate the two sections; ConfigError names the file and field."""
    source = str(settings.source or "bot file")
    try:
        options = PersonalizationSettings.model_validate(settings.personalization)
    except ValidationError as exc:
        raise ConfigError(_prefixed(describe_validation_error(source, exc), source, "personalization")) from None
    items: list[CatalogItem] = []
    for index, raw in enumerate(settings.catalog):
        try:
            items.append(CatalogItem.model_validate(raw))
        except ValidationError as exc:
            raise ConfigError(_prefixed(describe_validation_error(source, exc), source, f"catalog.{index}")) from None
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.id in seen:
            raise ConfigError(f"{source}: catalog.{index}.id: duplicate id {item.id!r} (also catalog.{seen[item.id]})")
        seen[item.id] = index
    if options.recommend_default > options.recommend_max:
        raise ConfigError(f"{source}: personalization.recommend_default: larger than recommend_max")
    return options, tuple(items)


def _prefixed(lines: str, source: str, prefix: str) -> str:
    """``file: alpha: msg`` -> ``file: personalization.alpha: msg``."""
    head = f"{source}: "
    return "\n".join(
        head + prefix + "." + line[len(head) :] if line.startswith(head) else line for line in lines.splitlines()
    )
