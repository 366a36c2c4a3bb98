"""Recommendations from the bot file's catalog (lessons, help articles, activities…).

Each item is embedded once at startup ("title. description. tags"), and each tag on
its own for the one-line reason. An item's score for a user is
``P(R_u, I_i) · seen_penalty^times_shown``: items already shown sink, but are not
hidden (a short catalog would otherwise run dry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.personalization.scoring import smoothed_similarity
from core.catalog import CatalogItem
from core.ports import Embedder


@dataclass(frozen=True, slots=True)
class Recommendation:
    item: CatalogItem
    score: float
    reason: str


class Catalog:
    def __init__(self, items: Sequence[CatalogItem], vectors: np.ndarray, tag_vectors: Mapping[str, np.ndarray]) -> None:
        self.items = tuple(items)
        self.vectors = vectors
        self.tag_vectors = dict(tag_vectors)

    @classmethod
    async def build(cls, items: Sequence[CatalogItem], embedder: Embedder) -> "Catalog":
        if not items:
            return cls((), np.zeros((0, embedder.dimension), dtype=np.float32), {})
        tags = sorted({tag for item in items for tag in item.tags})
        vectors = await embedder.embed([item.text() for item in items] + tags)
        return cls(items, vectors[: len(items)], dict(zip(tags, vectors[len(items) :])))

    def __len__(self) -> int:
        return len(self.items)

    def extended(self, other: "Catalog") -> "Catalog":
        """This catalog followed by ``other``'s items, without embedding anything again."""
        vectors = np.concatenate([self.vectors, other.vectors]) if len(other) else self.vectors
        return Catalog(self.items + other.items, vectors, {**self.tag_vectors, **other.tag_vectors})

    def recommend(
        self,
        interest: np.ndarray | None,
        *,
        alpha: float,
        count: int,
        seen: Mapping[str, int] | None = None,
        seen_penalty: float = 0.5,
    ) -> list[Recommendation]:
        """The ``count`` best items for ``interest`` (ties keep catalog order)."""
        if not self.items or interest is None:
            return []
        seen = seen or {}
        scores = smoothed_similarity(interest, self.vectors, alpha)
        penalties = np.array([seen_penalty ** seen.get(item.id, 0) for item in self.items])
        adjusted = scores * penalties
        order = sorted(range(len(self.items)), key=lambda i: (-adjusted[i], i))[:count]
        return [Recommendation(self.items[i], float(adjusted[i]), self._reason(self.items[i], interest, alpha, seen))
                for i in order]

    def _reason(self, item: CatalogItem, interest: np.ndarray, alpha: float, seen: Mapping[str, int]) -> str:
        if item.tags:
            scores = smoothed_similarity(interest, np.stack([self.tag_vectors[tag] for tag in item.tags]), alpha)
            reason = f"matches your interest in {item.tags[int(np.argmax(scores))]}"
        else:
            reason = "close to what we talk about"
        if seen.get(item.id):
            reason += " (suggested before)"
        return reason
