"""The loop-lag watchdog: a plugin whose code holds the event loop (a sync sleep, a CPU
loop) is named and interrupted, so the bot goes on serving every other chat.

Every call into a plugin goes through :meth:`Watchdog.run` (a coroutine) or
:meth:`Watchdog.step` (synchronous code: the import). They mark the plugin as running
for each synchronous step of its code, the stretch between two awaits: while a step
runs, the loop runs nothing else, so the age of the current step *is* the loop's lag.
A daemon thread looks four times per ``stall_s``; a step older than ``stall_s`` has
stalled the loop. When the loop runs in the main thread (``personabot run``), the
thread interrupts the step with a signal (SIGUSR2) whose handler raises
:class:`PluginStalled` in the plugin's code: that ends a CPU loop and a C-level
``time.sleep`` alike. Otherwise (or if SIGUSR2 is taken) the thread logs the stall
naming the plugin, and the step raises :class:`PluginStalled` when it returns. Either
way the guard that called the plugin disables it and logs one line
(core/plugins/wiring.py).

Bot code a plugin awaits on its way (``call_next`` of a middleware) runs under
:meth:`Watchdog.outside`, so the bot's own work is never blamed on a plugin.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
SIGNAL = getattr(signal, "SIGUSR2", None)


class PluginStalled(BaseException):
    """Raised into plugin code that held the event loop too long. A BaseException, so a
    plugin's own ``except Exception`` cannot swallow it."""


@dataclass(slots=True)
class _Step:
    plugin: str | None  # None: bot code inside a plugin's call (not the plugin's fault)
    started: float
    fired: int = 0  # interrupts sent for this step


class Watchdog:
    def __init__(self, stall_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self._clock = clock
        self._lock = threading.RLock()  # the signal handler runs in the loop's thread, maybe inside _enter
        self._steps: list[_Step] = []  # innermost last; only the loop's thread changes it
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop_thread = 0
        self._signal_installed = False
        self._previous_handler: Any = None
        self.stalls = 0  # steps interrupted since start

    # lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Watch the calling thread (the event loop's)."""
        if self._thread is not None:
            return
        self._loop_thread = threading.get_ident()
        if SIGNAL is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(SIGNAL) in (signal.SIG_DFL, None):
                self._previous_handler = signal.signal(SIGNAL, self._on_signal)
                self._signal_installed = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="plugin-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._thread = None
        if self._signal_installed:
            signal.signal(SIGNAL, self._previous_handler or signal.SIG_DFL)
            self._signal_installed = False

    # marking ------------------------------------------------------------------------

    def _enter(self, plugin: str | None) -> None:
        with self._lock:
            self._steps.append(_Step(plugin, self._clock()))

    def _leave(self) -> bool:
        """End the current step; whether it stalled the loop."""
        with self._lock:
            step = self._steps.pop()
            if self._steps:  # the enclosing step goes on from now
                self._steps[-1].started = self._clock()
        return step.plugin is not None and (step.fired > 0 or self._clock() - step.started >= self.stall_s)

    @contextmanager
    def step(self, plugin: str | None) -> Iterator[None]:
        """Synchronous plugin code (an import), watched as one step."""
        self._enter(plugin)
        try:
            yield
        finally:
            stalled = self._leave()
        if stalled:
            raise PluginStalled(f"held the event loop for more than {self.stall_s:g} s")

    def outside(self, awaitable: Awaitable[T]) -> Awaitable[T]:
        """Bot code awaited from inside a plugin's call: no plugin is to blame for it."""
        return _Watched(self, None, awaitable)

    def run(self, plugin: str, awaitable: Awaitable[T]) -> Awaitable[T]:
        """``awaitable`` (a plugin's coroutine) with each of its steps watched."""
        return _Watched(self, plugin, awaitable)

    def running(self) -> str | None:
        """The plugin whose code runs right now, if any."""
        with self._lock:
            return self._steps[-1].plugin if self._steps else None

    # the thread -----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.stall_s / 4):
            with self._lock:
                step = self._steps[-1] if self._steps else None
                if step is None or step.plugin is None or self._clock() - step.started < self.stall_s * (step.fired + 1):
                    continue
                step.fired += 1
                if step.fired == 1:
                    self.stalls += 1
                if self._signal_installed:
                    signal.pthread_kill(self._loop_thread, SIGNAL)  # again if the plugin swallowed the first
                elif step.fired == 1:
                    log.error("plugin %s holds the event loop (over %g s in one step); it is disabled when the step "
                              "returns", step.plugin, self.stall_s)

    def _on_signal(self, signum: int, frame: Any) -> None:
        with self._lock:
            step = self._steps[-1] if self._steps else None
            stalled = step is not None and step.fired > 0 and step.plugin is not None
        if stalled and (frame is None or frame.f_code.co_filename != __file__):  # in our bookkeeping: the step's end raises
            raise PluginStalled(f"held the event loop for more than {self.stall_s:g} s")


class _Watched:
    """Drives a coroutine step by step, marking each step as the plugin's (or the bot's)."""

    __slots__ = ("_dog", "_plugin", "_awaitable")

    def __init__(self, dog: Watchdog, plugin: str | None, awaitable: Awaitable[Any]) -> None:
        self._dog, self._plugin, self._awaitable = dog, plugin, awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self._awaitable.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            self._dog._enter(self._plugin)
            finished, result = False, None
            try:
                yielded = inner.throw(error) if error is not None else inner.send(value)
            except StopIteration as stop:
                finished, result = True, stop.value
            finally:
                stalled = self._dog._leave()
            if stalled:
                if not finished:
                    inner.close()
                raise PluginStalled(f"held the event loop for more than {self._dog.stall_s:g} s")
            if finished:
                return result
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # cancellation and the like go to the plugin's code
                value, error = None, exc
