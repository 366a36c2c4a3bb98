"""What one bot process gives its operators: metrics, readiness, and the HTTP server.

    operator = Operator.from_settings(settings.http)     # the server only if [http] is on
    app = build_app(settings, metrics=operator.metrics, features=[*features, setup_metrics])
    async with operator, app as bot:                    # /healthz answers from here on
        operator.watch(bot)                             # store + generator readiness
        ...adapters serve(bot, stop, operator)          # report their connection, share the server
        operator.health.started()
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.http.health import Health, generator_check, store_check
from core.http.instrument import AnsweredObserver, MeteredGenerator, MetricsMiddleware
from core.http.metrics import Metrics
from core.http.settings import HttpSettings

if TYPE_CHECKING:
    from core.http.server import HttpServer
    from core.runtime import Runtime


@dataclass
class Operator:
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    server: "HttpServer | None" = None  # None: [http] is off (adapters keep their own listeners)

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> "Operator":
        metrics = Metrics()
        health = Health(metrics, timeout_s=settings.readiness_timeout_s)
        if not settings.enabled:
            return cls(metrics, health)
        from core.http.server import HttpServer  # aiohttp loads only when the server is on

        return cls(metrics, health, HttpServer(settings, metrics, health))

    def watch(self, bot: "Runtime") -> None:
        """Readiness follows the bot's store and generator from now on; store latency is measured."""
        store_latency = self.metrics.store_latency
        bot.store.observe_latency(lambda operation, seconds: store_latency.labels(operation).observe(seconds))
        self.health.add_check("store", store_check(bot.store))
        self.health.add_check("generator", generator_check(bot.generator))

    async def __aenter__(self) -> "Operator":
        if self.server is not None:
            await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            await self.server.stop()


async def setup_metrics(bot: "Runtime", stack: AsyncExitStack) -> None:
    """The feature that feeds ``bot.metrics`` from the message path, through the declared seams.

    Put it last in the feature list: its generator wrapper is then the outermost, so it
    sees the busy refusals of the safety feature's concurrency cap. (Rate limits, moderation
    and scheduled jobs are counted where they happen, into the same ``bot.metrics``.)
    """
    metrics, seams = bot.metrics, bot.seams
    outermost = next(placed.name for placed in seams.middlewares.resolve() if placed.stage == "recovery")
    seams.middlewares.add("recovery", "metrics", MetricsMiddleware(metrics), before=outermost)
    seams.turn_observers.append(AnsweredObserver(metrics))
    seams.generator_wrappers.append(lambda generator: MeteredGenerator(generator, metrics))
