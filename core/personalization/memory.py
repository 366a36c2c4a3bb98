"""Which remembered facts a reply may use, and in what order.

Scope: a memory learned in a DM (``private``) is used in group chats only if its
owner allowed it (``/privacy groups on``); only the speaker's own memories (and
those of identities they linked) are ever considered.

Order: ``P(query, memory) + recency_weight · 0.5^(age / half-life)
+ lexical_weight · overlap(query, memory)``: the fact closest in meaning to the
message comes first; between equally close facts, the newer. The lexical term (the
share of the query's words, or CJK character pairs, found in the fact, each weighted
by how rare it is among the user's facts) backs up the embedder where it is weak:
all-MiniLM-L6-v2 was trained on English and barely separates Chinese sentences.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
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


_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
_WORDS = re.compile(r"\w+")


def terms(text: str) -> set[str]:
    """Words, and character pairs of CJK runs (Chinese has no spaces between words)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    found: set[str] = set()
    for run in _CJK_RUN.findall(text):
        found |= {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else {run}
    found |= set(_WORDS.findall(_CJK_RUN.sub(" ", text)))
    return found


def lexical_overlap(query: str, texts: Sequence[str]) -> np.ndarray:
    """For each text, the IDF-weighted share of the query's terms it contains (0 to 1).
    IDF is taken over ``texts``: a word every fact has ("I", "my") counts little."""
    wanted = terms(query)
    if not texts or not wanted:
        return np.zeros(len(texts))
    bags = [terms(text) for text in texts]
    df = Counter(term for bag in bags for term in bag & wanted)
    n = len(texts)
    idf = {term: math.log(1.0 + (n - df[term] + 0.5) / (df[term] + 0.5)) for term in wanted}
    total = sum(idf.values())
    return np.array([sum(idf[t] for t in bag & wanted) / total for bag in bags])


def rank_memories(
    query: Sequence[float] | np.ndarray | None,
    memories: Sequence[Memory],
    *,
    alpha: float,
    now: float,
    recency_weight: float,
    half_life_days: float,
    query_text: str = "",
    lexical_weight: float = 0.0,
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
    if lexical_weight and query_text:
        similarity = similarity + lexical_weight * lexical_overlap(query_text, [m.text for m in usable])
    ranked = [
        RankedMemory(memory, float(p) + recency_weight * recency(now - memory.created_at, half_life_days))
        for memory, p in zip(usable, similarity)
    ]
    ranked.sort(key=lambda item: (-item.score, -item.memory.id))
    return ranked
