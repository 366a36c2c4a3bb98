"""Which remembered facts a reply may use, and in what order.

Scope: a memory learned in a DM (``private``) is used in group chats only if its
owner allowed it (``/privacy groups on``); only the speaker's own memories (and
those of identities they linked) are ever considered.

Order: ``P(query, memory) + recency_weight · 0.5^(age / half-life)``, so the fact
closest to the message comes first and, between equally close facts, the newer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.personalization.scoring import recency, smoothed_similarity
from core.records import Memory


@dataclass(frozen=True, slots=True)
class RankedMemory:
    memory: Memory
    score: float


def current_facts(memories: Iterable[Memory]) -> list[Memory]:
    """Live memories with one per subject (the newest), oldest first.

    The store supersedes within one identity; linked identities can each hold a live
    fact on the same subject ("home" told on Telegram, then on Discord): the newer wins.
    """
    newest: dict[str, Memory] = {}
    loose: list[Memory] = []
    for memory in memories:
        if memory.superseded_by is not None:
            continue
        if not memory.subject:
            loose.append(memory)
            continue
        kept = newest.get(memory.subject)
        if kept is None or (memory.created_at, memory.id) > (kept.created_at, kept.id):
            newest[memory.subject] = memory
    return sorted([*newest.values(), *loose], key=lambda m: (m.created_at, m.id))


def visible_in(memories: Iterable[Memory], *, group_chat: bool, private_in_groups: bool) -> list[Memory]:
    if not group_chat or private_in_groups:
        return list(memories)
    return [memory for memory in memories if memory.scope == "group"]


def rank_memories(
    query: Sequence[float] | np.ndarray | None,
    memories: Sequence[Memory],
    *,
    alpha: float,
    now: float,
    recency_weight: float,
    half_life_days: float,
) -> list[RankedMemory]:
    """Memories with an embedding, best first (see the module docstring)."""
    usable = [memory for memory in memories if memory.embedding is not None]
    if not usable or query is None:
        return []
    dims = {len(memory.embedding) for memory in usable}  # type: ignore[arg-type]
    if dims != {len(query)}:  # written by another embedder: not comparable, skip them
        usable = [memory for memory in usable if len(memory.embedding) == len(query)]  # type: ignore[arg-type]
        if not usable:
            return []
    similarity = smoothed_similarity(query, np.asarray([m.embedding for m in usable], dtype=np.float32), alpha)
    ranked = [
        RankedMemory(memory, float(p) + recency_weight * recency(now - memory.created_at, half_life_days))
        for memory, p in zip(usable, similarity)
    ]
    ranked.sort(key=lambda item: (-item.score, -item.memory.id))
    return ranked
