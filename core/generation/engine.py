"""The static-cache batch engine: one thread, one decode step for every active reply.

It answers the same calls :class:`core.generation.batching.ContinuousBatcher` makes of
transformers' ``ContinuousBatchingManager`` (``add_request``, ``cancel_request``,
``register_result_handler``, ``start``, ``stop``), so the batcher's fair queue sits in
front of either. Per step it runs :meth:`DecodeModel.step` over the active rows, samples
them together (:mod:`core.generation.sampling`), checks stop tokens and lengths as
tensor ops, and makes one ``tolist()`` and one hand-off to the event loop.

Rows ``0..active-1`` of the cache hold the running replies; a finished one is swapped
behind them and stays there, parked, so the next turn of that conversation (whose
prompt begins with this one's prompt and reply) or any prompt sharing a prefix with it
(the system prompt) reuses its keys and values. Admission takes the parked row with the
longest shared prefix, else the least recently used one. New prompts are prefilled
between decode steps, up to ``prefill_tokens`` per step, so running replies keep going.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    rid: str
    ids: list[int]
    max_new: int
    params: tuple[float, int, float, float]  # temperature, top_k, top_p, repetition penalty
    generated: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class EngineOutput:
    """What the batcher's result handler reads (the fields transformers' outputs have)."""

    request_id: str
    generated_tokens: list[int]
    finished: bool = False
    error: str | None = None

    def is_finished(self) -> bool:
        return self.finished


class StaticEngine:
    def __init__(self, model: Any, stop_ids: list[int], *, max_batch_size: int, context_window: int,
                 parked_rows: int | None = None, prefill_tokens: int = 512, compile: bool = False) -> None:
        from core.generation.decode import DecodeModel

        self.rows = max_batch_size + (max_batch_size if parked_rows is None else parked_rows)
        self.max_batch_size, self.prefill_tokens = max_batch_size, prefill_tokens
        self.decoder = DecodeModel(model, self.rows, context_window)
        self.stop_ids = stop_ids
        self.compile = compile
        self._handlers: dict[str, Callable[[EngineOutput], None]] = {}
        self._inbox: deque[tuple[str, Any]] = deque()  # ("add", _Request) | ("cancel", rid), appended on the loop
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_Request] = deque()
        self._row_request: list[_Request | None] = [None] * self.rows
        self._row_tokens: list[list[int]] = [[] for _ in range(self.rows)]  # tokens whose keys/values the row holds
        self._row_used = [0] * self.rows
        self._clock = 0
        self.active = 0
        self._step_fn: Any = None

    # --- the manager interface ------------------------------------------------------------
    def start(self) -> None:
        import torch

        from core.generation.sampling import RowParams

        device = self.decoder.device
        self._params = RowParams(self.rows, self.decoder.vocab_size, device)
        self._next = torch.zeros(self.rows, dtype=torch.long, device=device)  # sampled, not yet fed
        self._position = torch.zeros(self.rows, dtype=torch.long, device=device)
        self._count = torch.zeros(self.rows, dtype=torch.long, device=device)
        self._limit = torch.ones(self.rows, dtype=torch.long, device=device)
        self._seen = torch.zeros(self.rows, self.decoder.vocab_size, dtype=torch.bool, device=device)
        self._stops = torch.tensor(self.stop_ids or [-1], device=device)
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        self._step_fn = self.decoder.step
        if self.compile:
            self._step_fn = torch.compile(self.decoder.step, dynamic=True)
        self._thread = threading.Thread(target=self._run, name="personabot-decode", daemon=True)
        self._thread.start()

    def _warm_compiled_step(self) -> None:
        """Compile the step for one row and for several before serving, over a cache held at its
        full size: a cache that grows, or a first batch of another size, would recompile while
        users wait (seconds per new shape). Runs on the engine's thread: requests wait in the inbox."""
        self.decoder.ensure_rows(self.rows)
        self.decoder.ensure(self.decoder.max_length)
        for batch in (1, 2, 3):
            self._step_fn(self._next[:batch], self._position[:batch], 8)

    def stop(self, block: bool = True) -> None:
        self._stopping = True
        self._wake.set()
        if block and self._thread is not None:
            self._thread.join()

    def register_result_handler(self, rid: str, handler: Callable[[EngineOutput], None]) -> None:
        """Call on the event loop that should run ``handler`` (the latest caller's loop gets the outputs)."""
        self._loop = asyncio.get_running_loop()
        self._handlers[rid] = handler

    def add_request(self, ids: list[int], *, request_id: str, max_new_tokens: int, temperature: float = 0.0,
                    top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, **_: Any) -> None:
        """``temperature <= 0``: greedy. Other keyword arguments (transformers' manager's) are ignored."""
        self._inbox.append(("add", _Request(request_id, list(ids), max_new_tokens, (temperature, top_k, top_p, repetition_penalty))))
        self._wake.set()

    def cancel_request(self, rid: str) -> None:
        self._handlers.pop(rid, None)
        self._inbox.append(("cancel", rid))
        self._wake.set()

    # --- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            if self.compile:
                try:
                    self._warm_compiled_step()
                except Exception:  # the engine still serves, uncompiled
                    log.exception("torch.compile of the decode step failed; decoding without it")
                    self._step_fn = self.decoder.step
            while not self._stopping:
                self._take_inbox()
                if not self.active and not self._pending:
                    self._wake.wait()
                    self._wake.clear()
                    continue
                for work in (self._admit, self._step):  # first tokens go out before the next step
                    outputs: list[EngineOutput] = []
                    try:
                        work(outputs)
                    except Exception as exc:  # a bad step fails what is running, the engine goes on
                        log.exception("batch step failed")
                        outputs += self._fail_all(f"{type(exc).__name__}: {exc}")
                    if outputs:
                        self._deliver(outputs)

    def _take_inbox(self) -> None:
        while self._inbox:
            kind, item = self._inbox.popleft()
            if kind == "add":
                self._pending.append(item)
                continue
            for request in list(self._pending):
                if request.rid == item:
                    self._pending.remove(request)
            for row in range(self.active):
                request = self._row_request[row]
                if request is not None and request.rid == item:
                    self._release(row)
                    break

    def _admit(self, outputs: list[EngineOutput]) -> None:
        """Give waiting requests rows (up to ``prefill_tokens`` new tokens) and prefill them in one pass."""
        import torch

        budget, admitted = self.prefill_tokens, []  # (row, start)
        while self._pending and self.active < self.max_batch_size and budget > 0:
            request = self._pending.popleft()
            if len(request.ids) + request.max_new > self.decoder.max_length or not request.ids:
                outputs.append(EngineOutput(request.rid, [], True, f"prompt of {len(request.ids)} tokens + {request.max_new} new "
                                                                 f"exceeds the cache's {self.decoder.max_length} positions"))
                continue
            row = self.active
            reused, source = self._best_parked(request.ids)
            self._swap(source, row)
            start = min(reused, len(request.ids) - 1)
            self._row_tokens[row], self._row_request[row] = list(request.ids), request
            self._params.set(row, *request.params)
            self._seen[row] = False
            self._seen[row, torch.tensor(request.ids, device=self.decoder.device)] = True
            self._position[row], self._count[row], self._limit[row] = len(request.ids), 1, request.max_new
            self.active += 1
            admitted.append((row, start))
            budget -= len(request.ids) - start
        if admitted:
            self._prefill(admitted, outputs)

    def _prefill(self, admitted: list[tuple[int, int]], outputs: list[EngineOutput]) -> None:
        """The first token of each admitted row (rows are consecutive); rows that end at once are released."""
        import torch

        from core.generation.sampling import sample

        first, count = admitted[0][0], len(admitted)
        chunks = [torch.tensor(self._row_request[row].ids[start:], device=self.decoder.device) for row, start in admitted]
        logits = self.decoder.prefill(first, chunks, [start for _, start in admitted])
        tokens = sample(logits, self._seen[first : first + count], self._params.window(first, count), count, self._generator)
        self._seen[torch.arange(first, first + count, device=tokens.device), tokens] = True  # the reply's tokens are penalised too
        self._next[first : first + count] = tokens
        ended = []
        for (row, _), token in zip(admitted, tokens.tolist()):
            request = self._row_request[row]
            request.generated.append(token)
            done = token in self.stop_ids or request.max_new <= 1
            outputs.append(EngineOutput(request.rid, [token], done))
            if done:
                ended.append(row)
        for row in reversed(ended):
            self._release(row)

    def _step(self, outputs: list[EngineOutput]) -> None:
        import torch

        from core.generation.sampling import sample

        batch = self.active
        if not batch:
            return
        kv_length = max(len(self._row_tokens[r]) for r in range(batch)) + 1
        self.decoder.ensure(kv_length)
        logits = self._step_fn(self._next[:batch], self._position[:batch], kv_length)
        tokens = sample(logits, self._seen, self._params, batch, self._generator)
        self._position[:batch] += 1
        self._count[:batch] += 1
        self._seen[torch.arange(batch, device=tokens.device), tokens] = True
        done = torch.isin(tokens, self._stops) | (self._count[:batch] >= self._limit[:batch])
        self._next[:batch] = tokens
        values, finished = torch.stack((tokens, done.long())).tolist()
        for row in range(batch):
            self._row_tokens[row].append(self._row_request[row].generated[-1])
        self._emit_step(values, finished, outputs)

    def _emit_step(self, values: list[int], finished: list[int], outputs: list[EngineOutput]) -> None:
        ended = []
        for row, (token, done) in enumerate(zip(values, finished)):
            request = self._row_request[row]
            request.generated.append(token)
            outputs.append(EngineOutput(request.rid, list(request.generated), bool(done)))
            if done:
                ended.append(row)
        for row in reversed(ended):  # highest first: swapping a row behind the active ones keeps lower indices valid
            self._release(row)

    def _release(self, row: int) -> None:
        """Park ``row``: swap it behind the active rows; its cache stays for prefix reuse."""
        last = self.active - 1
        self._row_request[row] = None
        self._clock += 1
        self._row_used[row] = self._clock
        self._swap(row, last)
        self.active = last

    def _best_parked(self, ids: list[int]) -> tuple[int, int]:
        """(shared prefix length, row) of the parked row to reuse for ``ids``."""
        best, best_row = 0, -1
        for row in range(self.active, self.rows):
            shared = len(os.path.commonprefix([self._row_tokens[row], ids]))
            if shared > best:
                best, best_row = shared, row
        if best_row < 0:
            best_row = min(range(self.active, self.rows), key=self._row_used.__getitem__)
        return best, best_row

    def _swap(self, a: int, b: int) -> None:
        if a == b:
            return
        self.decoder.swap(a, b, max(len(self._row_tokens[a]), len(self._row_tokens[b])))
        self._params.swap(a, b)
        for t in (self._next, self._position, self._count, self._limit, self._seen):
            t[[a, b]] = t[[b, a]]
        for rows in (self._row_request, self._row_tokens, self._row_used):
            rows[a], rows[b] = rows[b], rows[a]

    def _fail_all(self, error: str) -> list[EngineOutput]:
        failed = [r for r in self._row_request[: self.active] if r is not None] + list(self._pending)
        self._pending.clear()
        for row in range(self.active):
            self._row_request[row] = None
            self._row_tokens[row] = []
        self.active = 0
        return [EngineOutput(r.rid, list(r.generated), True, error) for r in failed]

    def _deliver(self, outputs: list[EngineOutput]) -> None:
        handlers = self._handlers

        def deliver() -> None:
            for output in outputs:
                handler = handlers.get(output.request_id)
                if handler is not None:
                    handler(output)
                if output.finished:
                    handlers.pop(output.request_id, None)

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(deliver)

