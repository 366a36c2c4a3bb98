"""The seed's smoothed similarity and the interest vector.

    P(u, i) = (R_u · I_i) / (|R_u| · |I_i| + α)

With unit vectors and α = 0 this is the cosine. α > 0 pulls the score of a short
or diffuse vector (a user who said little, or about many unrelated things) towards
0, and makes a zero vector score 0 where the cosine would be 0/0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

VectorLike = Sequence[float] | np.ndarray


def smoothed_similarity(user: VectorLike | None, items: np.ndarray | Sequence[VectorLike], alpha: float) -> np.ndarray:
    """P(u, i) for every row of ``items``; 0 where the denominator is 0 (or no ``user``)."""
    matrix = np.atleast_2d(np.asarray(items, dtype=np.float64))
    if matrix.size == 0:
        return np.zeros(len(items), dtype=np.float64)
    if user is None:
        return np.zeros(matrix.shape[0], dtype=np.float64)
    vector = np.asarray(user, dtype=np.float64)
    if vector.shape[-1] != matrix.shape[1]:
        raise ValueError(f"dimension mismatch: user {vector.shape[-1]}, items {matrix.shape[1]}")
    numerator = matrix @ vector
    denominator = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector) + alpha
    scores = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=scores, where=denominator > 0)
    return scores


def decayed_weight(count: int, decay: float) -> float:
    """Σ_{k<count} decay^k: the total weight of ``count`` messages in the decayed mean."""
    return (1.0 - decay**count) / (1.0 - decay)


def update_interest(
    current: VectorLike | None, count: int, embedding: VectorLike, decay: float
) -> tuple[np.ndarray, int]:
    """Add one message to the exponentially decayed mean of a user's message embeddings.

    R_n = Σ_k decay^(n-k) e_k / Σ_k decay^(n-k): the newest message weighs 1, the one
    before ``decay``, and so on. Unlike ``R ← decay·R + (1-decay)·e`` it is not biased
    towards zero for a new user (the first message gives R = e).
    """
    new = np.asarray(embedding, dtype=np.float64)
    if current is None or count <= 0:
        return new.astype(np.float32), 1
    past = decay * decayed_weight(count, decay)
    vector = (past * np.asarray(current, dtype=np.float64) + new) / (past + 1.0)
    return vector.astype(np.float32), count + 1


def combine_interests(vectors: Sequence[tuple[VectorLike | None, int]], decay: float) -> np.ndarray | None:
    """One vector for linked identities: their means, weighted by their decayed weights."""
    total, weight = None, 0.0
    for vector, count in vectors:
        if vector is None or count <= 0:
            continue
        w = decayed_weight(count, decay)
        part = w * np.asarray(vector, dtype=np.float64)
        total = part if total is None else total + part
        weight += w
    return None if total is None else (total / weight).astype(np.float32)


def recency(age_seconds: float, half_life_days: float) -> float:
    """1 for now, 0.5 after one half-life, towards 0 for old facts."""
    return float(0.5 ** (max(age_seconds, 0.0) / (half_life_days * 86400.0)))
