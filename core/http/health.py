"""Readiness: is this process able to answer? The state behind ``/readyz``.

Two kinds of component feed it:

* checks, asked on every probe: ``add_check("store", store_check(store))``;
* reports, pushed by whoever knows: an adapter calls ``report("discord", None)``
  once its gateway is up and ``report("discord", "gateway disconnected")`` when it
  drops.

Until :meth:`Health.started` is called the process is ``starting`` (the model may be
loading), so an orchestrator sends no traffic to a half-built bot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from core.http.metrics import Metrics
from core.ports import Generator, Store

Check = Callable[[], Awaitable[str | None]]  # None: ready; otherwise the reason it is not
MAX_REASON = 200
PING_SCOPE, PING_NAME = "personabot", "readyz"  # one indexed read, never written


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


class Health:
    def __init__(self, metrics: Metrics | None = None, *, timeout_s: float = 2.0) -> None:
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._checks: dict[str, Check] = {}
        self._reports: dict[str, str | None] = {}
        self._starting = True

    def add_check(self, component: str, check: Check) -> None:
        if component in self._checks or component in self._reports:
            raise ValueError(f"readiness component {component!r} exists")
        self._checks[component] = check

    def report(self, component: str, problem: str | None) -> None:
        """Push a component's state; adapters report their connection (``None``: connected)."""
        if component in self._checks:
            raise ValueError(f"readiness component {component!r} is a check")
        self._reports[component] = problem
        if self._metrics is not None:
            self._metrics.adapter_connected.labels(component).set(0 if problem else 1)

    def started(self) -> None:
        """Everything is wired; from now on readiness is what the components say."""
        self._starting = False

    async def problems(self) -> dict[str, str]:
        """Component -> reason, for every component not ready; empty when the process is ready."""
        found: dict[str, str] = {"process": "starting"} if self._starting else {}
        found |= {name: problem for name, problem in self._reports.items() if problem}
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        found |= {name: problem for name, problem in zip(names, results) if problem}
        return found

    async def _run(self, check: Check) -> str | None:
        try:
            problem = await asyncio.wait_for(check(), self._timeout_s)
        except TimeoutError:
            return f"no answer within {self._timeout_s:g} s"
        except Exception as error:  # a probe must answer, whatever the component does
            return _short(f"{type(error).__name__}: {error}")
        return _short(problem) if problem else None


def store_check(store: Store) -> Check:
    """The store answers a read (one indexed row; works the same on every backend)."""

    async def check() -> str | None:
        await store.get_setting(PING_SCOPE, PING_NAME)
        return None

    return check


def generator_check(generator: Generator) -> Check:
    """``Generator.health()`` says ok (a remote backend: its server answers)."""

    async def check() -> str | None:
        health = await generator.health()
        if health.get("ok", False):
            return None
        if health.get("error"):
            return str(health["error"])
        return f"status {health['status']}" if "status" in health else "not healthy"

    return check
