"""Continuous batching for many concurrent conversations on one local model.

Two engines run the batch; a fair admission queue of ours sits in front of either:

- ``static`` (:mod:`core.generation.engine`, Llama-family models): one decode step for
  every active reply over a static per-row KV cache, sampling and stop checks as tensor
  ops; finished rows stay parked for prefix reuse.
- ``transformers``: transformers' own ``ContinuousBatchingManager`` (paged KV cache, a
  background decode loop, prefix sharing by content hash), for every other attention model.

``engine="auto"`` takes ``static`` when the model supports it. The queue:

- at most ``max_batch_size`` requests decode together; the rest wait;
- waiting requests are admitted round-robin across bots (``tenant``: several bots of one
  process sharing the model, bots/multi.py), then across each bot's users, and one user of
  a bot holds at most ``max_active_per_user`` slots, so neither a user nor a bot flooding
  the model delays another's first token beyond the next free slot;
- the queue is bounded (``max_queue`` in all, ``max_waiting_per_user`` per user): beyond
  that :class:`GenerationBusy` is raised at once, so the chat service can answer "busy";
- a cancelled, timed-out or abandoned request leaves the batch at the next step and
  its slot goes to the next waiting request.

Both engines keep the keys and values of finished requests, so the next turn of a
conversation, whose prompt extends the previous prompt and reply, recomputes only the
new tokens: time to first token does not grow with the history. ``cache_tokens`` sizes
the cache (the static engine: rows of ``context_window`` positions, at least one per
batch slot, grown in length only as used).

transformers' batch sampler lacks a repetition penalty and per-request greedy decoding;
:func:`sampling_processor` applies :mod:`core.generation.sampling` in it. Per-request
seeds are not supported by either engine (one random stream per batch): the generator
sends seeded requests down its sequential path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Any

from core.errors import GenerationBusy, GenerationError
from core.events import FinishReason, GenerationParams

log = logging.getLogger(__name__)

_ids = itertools.count()
CPU_CACHE_BYTES = 1 << 30  # default KV-cache budget on a CPU
ENGINES = ("auto", "static", "transformers")


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of keys and values one token takes in the cache, over all layers."""
    config = model.config.get_text_config()
    heads = getattr(config, "num_attention_heads", 1)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * model.dtype.itemsize


def supports_batching(model: Any) -> bool:
    """Transformers' continuous batching needs a model on the attention interface (not an LSTM)."""
    return bool(getattr(model, "_supports_attention_backend", False))


def sampling_processor() -> Any:
    """Per-request sampling controls (:mod:`core.generation.sampling`) as one processor in
    transformers' batched API."""
    import torch
    from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor

    class Sampling(ContinuousBatchingLogitsProcessor):
        supported_kwargs = {"temperature": float, "top_k": int, "top_p": float, "repetition_penalty": float}
        ignored_kwargs = ()

        def __init__(self) -> None:
            self._rows: list[list[int]] = []
            self._params: list[tuple[float, int, float, float]] = []

        def fill_defaults(self, int32_tensor: Any) -> None:
            int32_tensor.zero_()  # unused: the parameters are read in prepare_tensor_args

        def prepare_tensor_args(self, requests_with_new_token: list[Any]) -> Any:
            # Runs on the batch thread just before __call__ for the same batch (async batching is off).
            self._rows, self._params = [], []
            for request in requests_with_new_token:
                state = request.state
                kw = state.logit_processor_kwargs
                penalty = float(kw.get("repetition_penalty", 1.0))
                self._rows.append(state.initial_tokens + state.generated_tokens if penalty != 1.0 else [])
                self._params.append((float(kw.get("temperature", 1.0)), int(kw.get("top_k", 0)), float(kw.get("top_p", 1.0)), penalty))
            return torch.zeros(len(requests_with_new_token), dtype=torch.int32)

        def __call__(self, scores: Any, tensor_arg: Any) -> Any:
            # Rows beyond the requests with a new token (a prompt still being prefilled in
            # chunks) are placeholders whose samples transformers discards: left as they are.
            m = min(scores.size(0), len(self._params))
            if m:
                scores[:m] = filter_rows(scores[:m], self._rows, self._params)
            return scores

    return Sampling()


def filter_rows(scores: Any, rows: list[list[int]], params: list[tuple[float, int, float, float]]) -> Any:
    """Filtered logits for ``scores`` [B, V]; ``rows[i]``: row i's tokens so far; ``params[i]`` =
    (temperature, top_k, top_p, penalty)."""
    import torch

    from core.generation.sampling import filtered_logits

    device = scores.device
    seen = torch.zeros(scores.shape, dtype=torch.bool, device=device)
    for i, row in enumerate(rows):
        if row:
            seen[i, torch.tensor(row, device=device)] = True
    temperature, top_k, top_p, penalty = (torch.tensor(column, device=device) for column in zip(*params))
    return filtered_logits(scores, seen, temperature.to(scores.dtype), top_k, top_p.to(scores.dtype), penalty.to(scores.dtype))


class BatchedRequest:
    """One request's life in the batcher; ``pieces`` streams its decoded text."""

    def __init__(self, batcher: "ContinuousBatcher", ids: list[int], params: GenerationParams, max_new: int, user: str,
                 conversation: str, tenant: str = "") -> None:
        from core.generation.token_text import TokenText

        self.batcher = batcher
        self.rid = f"pb-{next(_ids)}"
        self.ids, self.max_new, self.user, self.conversation = ids, max_new, user, conversation
        self.tenant, self.key = tenant, (tenant, user)  # the queue key: a user of a bot
        greedy = params.temperature <= 0
        if batcher.engine == "static":  # greedy is its own fast path there
            self.kwargs = {"temperature": float(params.temperature), "top_k": params.top_k, "top_p": float(params.top_p)}
        else:
            self.kwargs = {
                "temperature": 1.0 if greedy else float(params.temperature),
                "top_k": 1 if greedy else (params.top_k if params.top_k > 0 else batcher.vocab_size),
                "top_p": 1.0 if greedy else float(params.top_p),
            }
        self.kwargs["repetition_penalty"] = float(params.repetition_penalty)
        self.pieces = TokenText(batcher.tokenizer)
        self.state = "waiting"  # -> "active" -> "done"
        self.generated: list[int] = []
        self.error: str | None = None

    def cancel(self) -> None:
        self.batcher.cancel_request(self)

    async def finish(self) -> FinishReason:
        if self.error is not None:
            raise GenerationError(f"batched generation failed: {self.error}")
        if self.generated and self.generated[-1] in self.batcher.stop_ids:
            return FinishReason.STOP
        return FinishReason.LENGTH if len(self.generated) >= self.max_new else FinishReason.STOP


class ContinuousBatcher:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        stop_ids: list[int],
        *,
        context_window: int,
        max_batch_size: int = 16,
        max_queue: int = 256,
        max_active_per_user: int | None = None,
        max_waiting_per_user: int | None = None,
        cache_tokens: int | None = None,
        page_size: int = 32,
        engine: str = "auto",
        compile: bool = False,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise GenerationError("max_batch_size and max_queue must be at least 1")
        if engine not in ENGINES:
            raise GenerationError(f"unknown batch engine {engine!r}; expected one of {ENGINES}")
        from core.generation.decode import unsupported

        reason = unsupported(model)
        if engine == "static" and reason:
            raise GenerationError(f"the static batch engine cannot run this model: {reason}")
        self.engine = "static" if engine == "auto" and not reason else "transformers" if engine == "auto" else engine
        self.compile = compile
        self.context_window = context_window
        self.model, self.tokenizer, self.stop_ids = model, tokenizer, stop_ids
        self.vocab_size = model.config.get_text_config().vocab_size
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.max_active_per_user = max_active_per_user or max(1, max_batch_size // 4)
        self.max_waiting_per_user = max_waiting_per_user or max(1, max_queue // 4)
        on_gpu = model.device.type == "cuda"
        # On a GPU transformers sizes the cache from free memory. On a CPU we do: room for a full
        # batch of full windows plus as much again for cached prefixes of idle conversations,
        # within CPU_CACHE_BYTES.
        if cache_tokens is None and not on_gpu:
            cache_tokens = min(2 * max_batch_size * context_window, max(CPU_CACHE_BYTES // kv_bytes_per_token(model), 4 * page_size))
        self.cache_tokens = cache_tokens
        self.page_size = page_size
        self._waiting: dict[tuple[str, str], deque[BatchedRequest]] = {}  # (bot, user) -> its queue
        self._tenants: deque[str] = deque()  # bots with waiting requests, round-robin order
        self._turns: dict[str, deque[tuple[str, str]]] = {}  # bot -> its users with waiting requests, round-robin
        self._active: dict[str, BatchedRequest] = {}
        self._active_per_user: dict[tuple[str, str], int] = {}
        self._manager: Any = None
        self.stats = {"admitted": 0, "finished": 0, "cancelled": 0, "rejected": 0, "generated_tokens": 0}

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Build and start the batch engine (on the event loop). Raises GenerationError if it can't."""
        if self.engine == "static":
            from core.generation.engine import StaticEngine

            rows = max(2 * self.max_batch_size if self.cache_tokens is None else self.cache_tokens // self.context_window, self.max_batch_size)
            try:
                engine = StaticEngine(self.model, self.stop_ids, max_batch_size=self.max_batch_size, context_window=self.context_window,
                                      parked_rows=rows - self.max_batch_size, compile=self.compile)
                engine.start()
            except Exception as exc:
                raise GenerationError(f"the static batch engine did not start: {type(exc).__name__}: {exc}") from exc
            self._manager = engine
            return
        self._start_transformers()

    def _start_transformers(self) -> None:
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        # Sampling without transformers' own warpers: every request brings its own (sampling_processor).
        config = GenerationConfig(do_sample=True, temperature=None, top_k=None, top_p=None,
                                  eos_token_id=self.stop_ids or -1, pad_token_id=self.tokenizer.pad_token_id)
        cb_config = ContinuousBatchingConfig(
            page_size=self.page_size,
            num_blocks=-(-self.cache_tokens // self.page_size) if self.cache_tokens else None,
            max_batch_tokens=None if self.model.device.type == "cuda" else 512,
            max_requests_per_batch=self.max_batch_size,
            allow_block_sharing=True,
            use_async_batching=False,  # the sampling processor reads the batch it was prepared for
            auto_switch_to_flash=False,
        )
        try:
            manager = self.model.init_continuous_batching(generation_config=config, continuous_batching_config=cb_config)
            processors = manager.logit_processor
            processors.logits_processor.clear()
            processors.logits_processor.append(sampling_processor())
            processors.tensors_required = 1
            processors.supported_keys = dict(processors.logits_processor[0].supported_kwargs)
            processors.do_processing = True
            manager.start()
        except Exception as exc:
            raise GenerationError(f"continuous batching is not available for this model: {type(exc).__name__}: {exc}") from exc
        self._manager = manager

    async def aclose(self) -> None:
        """Fail what is still queued or running, then stop the batch thread."""
        manager, self._manager = self._manager, None
        for request in [*self._active.values(), *(r for q in self._waiting.values() for r in q)]:
            self._end(request, error="the model was shut down")
        if manager is not None:
            await asyncio.to_thread(manager.stop, block=True)

    # --- queueing ------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @property
    def active(self) -> int:
        return len(self._active)

    def submit(self, ids: list[int], params: GenerationParams, max_new: int, *, user: str, conversation: str,
               tenant: str = "") -> BatchedRequest:
        """Queue a request (call on the event loop). Raises GenerationBusy when the queue is full.
        ``tenant``: the bot asking, when several share this model."""
        if self._manager is None:
            raise GenerationError("the batch manager is not running")
        key = (tenant, user)
        queue = self._waiting.get(key)
        if self.waiting >= self.max_queue or (queue is not None and len(queue) >= self.max_waiting_per_user):
            self.stats["rejected"] += 1
            raise GenerationBusy(f"generation queue full ({self.waiting} waiting, {self.active} running)")
        request = BatchedRequest(self, ids, params, max_new, user, conversation, tenant)
        if queue is None:
            queue = self._waiting[key] = deque()
            if tenant not in self._turns:
                self._turns[tenant] = deque()
                self._tenants.append(tenant)
            self._turns[tenant].append(key)
        queue.append(request)
        self._admit()
        return request

    def _admit(self) -> None:
        """Fill free slots from the waiting queues: one request per bot per round, each bot's
        users in turn."""
        skipped = 0
        while self._tenants and len(self._active) < self.max_batch_size and skipped < len(self._tenants):
            tenant = self._tenants[0]
            self._tenants.rotate(-1)
            key = self._next_user(self._turns[tenant])
            if key is None:  # each of this bot's waiting users holds its slots already
                skipped += 1
                continue
            skipped = 0
            queue = self._waiting[key]
            request = queue.popleft()
            if not queue:
                self._forget_queue(key)
            self._start(request)

    def _next_user(self, users: deque[tuple[str, str]]) -> tuple[str, str] | None:
        for _ in range(len(users)):
            key = users[0]
            users.rotate(-1)
            if self._active_per_user.get(key, 0) < self.max_active_per_user:
                return key
        return None

    def _forget_queue(self, key: tuple[str, str]) -> None:
        del self._waiting[key]
        users = self._turns[key[0]]
        users.remove(key)
        if not users:
            del self._turns[key[0]]
            self._tenants.remove(key[0])

    def _start(self, request: BatchedRequest) -> None:
        request.state = "active"
        self._active[request.rid] = request
        self._active_per_user[request.key] = self._active_per_user.get(request.key, 0) + 1
        self.stats["admitted"] += 1
        self._manager.register_result_handler(request.rid, self._on_output)
        self._manager.add_request(request.ids, request_id=request.rid, max_new_tokens=request.max_new, streaming=True,
                                  eos_token_id=self.stop_ids or -1, **request.kwargs)

    def _on_output(self, output: Any) -> None:
        """A step's result for one request, on the event loop."""
        request = self._active.get(output.request_id)
        if request is None:
            return  # cancelled meanwhile
        new = output.generated_tokens[len(request.generated) :]
        if new:
            request.generated = list(output.generated_tokens)
            request.pieces.put(new)
        if output.is_finished():
            self.stats["finished"] += 1
            self._end(request, error=output.error)

    def _end(self, request: BatchedRequest, error: str | None = None) -> None:
        """Take a request out of the batcher, free its slot, admit the next one."""
        if request.state == "done":
            return
        if request.state == "active":
            del self._active[request.rid]
            left = self._active_per_user[request.key] - 1
            if left:
                self._active_per_user[request.key] = left
            else:
                del self._active_per_user[request.key]
            self.stats["generated_tokens"] += len(request.generated)
        elif request.state == "waiting":
            queue = self._waiting[request.key]
            queue.remove(request)
            if not queue:
                self._forget_queue(request.key)
        request.state, request.error = "done", error
        request.pieces.end()
        self._admit()

    def cancel_request(self, request: BatchedRequest) -> None:
        """Stop one request (timeout, stop string, consumer gone); its slot frees at once."""
        if request.state == "done":
            return
        if request.state == "active" and self._manager is not None:
            self._manager.cancel_request(request.rid)
            router = getattr(self._manager, "output_router", None)
            if router is not None:  # transformers keeps handlers of cancelled requests otherwise
                with router._lock:
                    router.result_handlers.pop(request.rid, None)
        self.stats["cancelled"] += 1
        self._end(request)

    def info(self) -> dict[str, Any]:
        return {"active": self.active, "waiting": self.waiting, "max_batch_size": self.max_batch_size, "engine": self.engine, **self.stats}
