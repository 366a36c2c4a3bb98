"""The dashboard's figures: stored traffic from the Store, live state from the running bot.

What the store holds (turns per minute, active users and conversations, reply latency
as the time from a user turn to its stored reply, moderation actions) is the same for
``personabot web`` and ``personabot run``. What only a running process knows (time to
first token, queue depth, busy replies, model and adapter health) comes from a
:class:`LiveSource`; ``personabot run`` passes :class:`MetricsLive` built on the
process's Prometheus registry and readiness checks, ``personabot web`` passes none.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.ports import Store

WINDOW_S = 3600.0
BUCKET_S = 60.0


@dataclass(frozen=True, slots=True)
class LiveFigures:
    ttft_p50: float | None = None  # seconds, since the process started
    ttft_p95: float | None = None
    queue_depth: float | None = None
    busy_replies: float | None = None
    health: dict[str, str] = field(default_factory=dict)  # component -> problem; {"process": "ready"} when none
    model: dict[str, Any] = field(default_factory=dict)  # the generator's own health()


class LiveSource(Protocol):
    async def figures(self) -> LiveFigures: ...


@dataclass(frozen=True, slots=True)
class Dashboard:
    per_minute: tuple[int, ...]
    active_users: int
    active_conversations: int
    latency_p50: float | None
    latency_p95: float | None
    moderation_actions: int
    totals: dict[str, int]
    live: LiveFigures | None


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def dashboard(store: Store, now: float, live: LiveSource | None, *, totals: bool = True) -> Dashboard:
    """``totals``: also count every stored row (``Store.stats``, a full count: about 0.1 s at
    a million messages), which the 5-second refresh leaves out."""
    since = now - WINDOW_S
    activity = await store.activity(since, now, BUCKET_S)
    moderation = await store.find_audit(action="moderation", limit=1000)
    return Dashboard(
        per_minute=activity.messages,
        active_users=activity.active_users,
        active_conversations=activity.active_conversations,
        latency_p50=percentile(activity.reply_seconds, 0.50),
        latency_p95=percentile(activity.reply_seconds, 0.95),
        moderation_actions=sum(1 for entry in moderation if entry.at >= since),
        totals=await store.stats() if totals else {},
        live=None if live is None else await live.figures(),
    )


def histogram_quantile(buckets: Sequence[tuple[float, float]], share: float) -> float | None:
    """Prometheus-style quantile from cumulative ``(upper bound, count)`` buckets, +Inf last."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = share * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all we know
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


class MetricsLive:
    """Live figures of the serving process: its Prometheus registry (core.http.metrics),
    its readiness problems (core.http.health.Health.problems) and the generator's health."""

    def __init__(
        self,
        registry: Any | None,
        *,
        readiness: Callable[[], Awaitable[dict[str, str]]] | None = None,
        model_health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.registry, self.readiness, self.model_health = registry, readiness, model_health

    def _samples(self, name: str) -> list[Any]:
        if self.registry is None:
            return []
        return [sample for metric in self.registry.collect() for sample in metric.samples if sample.name == name]

    def _value(self, name: str) -> float | None:
        samples = self._samples(name)
        return sum(sample.value for sample in samples) if samples else None

    async def figures(self) -> LiveFigures:
        buckets: dict[float, float] = {}
        for sample in self._samples("personabot_time_to_first_token_seconds_bucket"):
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
        problems = {} if self.readiness is None else await self.readiness()
        return LiveFigures(
            ttft_p50=histogram_quantile(sorted(buckets.items()), 0.50),
            ttft_p95=histogram_quantile(sorted(buckets.items()), 0.95),
            queue_depth=self._value("personabot_generation_queue_depth"),
            busy_replies=self._value("personabot_busy_replies_total"),
            health=problems or {"process": "ready"},
            model={} if self.model_health is None else await self.model_health(),
        )
