"""Catalog items: what /recommend ranks, declared by the bot file or by plugins."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


_SLUG = re.compile(r"[^\w]+")


def slug(text: str) -> str:
    """A stable id from a title: ``"Intro to Python!" -> "intro-to-python"`` (any script)."""
    return _SLUG.sub("-", unicodedata.normalize("NFKC", text).casefold()).strip("-_")[:64]


class CatalogItem(BaseModel):
    """One thing /recommend can offer: from the bot file's [[catalog]] or a plugin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = ""  # default: slug of the title
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    tags: tuple[str, ...] = ()

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(tag.strip() for tag in tags)
        if any(not tag or len(tag) > 50 for tag in cleaned):
            raise ValueError("tags must be 1 to 50 characters")
        return cleaned

    @model_validator(mode="after")
    def _default_id(self) -> "CatalogItem":
        if not self.id:
            object.__setattr__(self, "id", slug(self.title) or "item")
        if not re.fullmatch(r"[\w-]{1,64}", self.id):
            raise ValueError("id must be 1 to 64 letters, digits, '_' or '-'")
        return self

    def text(self) -> str:
        """What is embedded for scoring."""
        parts = [self.title, self.description, ", ".join(self.tags)]
        return ". ".join(part for part in parts if part)
