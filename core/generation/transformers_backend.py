"""Local Hugging Face causal LMs, in process, streaming.

    gen = await TransformersGenerator.load("core/assets/default_model")   # or "gpt2", a hub id
    async for chunk in gen.stream(GenerationRequest(messages)): ...

Loading happens once per (model, adapter, device, dtype) in a process: two bots that name
the same model share its weights and its batch. Attention models are served by the
continuous batcher (:mod:`core.generation.batching`): concurrent conversations share
forward passes. Other models (the LSTM baseline), seeded requests and ``batching=False``
take the sequential path: one ``model.generate`` at a time on a worker thread, streamed
through transformers' ``AsyncTextIteratorStreamer``, stopped by a ``StoppingCriteria``
that watches a cancel flag and the deadline. Either way a stream ends on eos or any other
control token, a stop string, ``max_new_tokens``, the timeout, ``cancel(conversation_id)``
or when its consumer stops iterating, and the model work for it stops too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import GenerationError
from core.events import ChatMessage, Chunk, FinishReason, GenerationParams, GenerationRequest
from core.generation import vision
from core.generation.prompt import PromptRenderer
from core.generation.tool_calls import tool_call_stream
from core.generation.relay import Interrupts, relay

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
DTYPES = ("auto", "float32", "float16", "bfloat16")
LSTM_MODEL_TYPE = "personabot-lstm"
_WINDOW_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")


# --- locating and loading ----------------------------------------------------------
def looks_like_path(model: str) -> bool:
    """True for ``./m``, ``/srv/m``, ``~/m``, ``a/b/c``; False for hub ids ``gpt2``, ``org/name``."""
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1 or model.endswith("/")


def resolve_source(model: str) -> tuple[str, bool]:
    """(where to load from, is_local). A local folder wins over a hub id of the same name."""
    if not model or not model.strip():
        raise GenerationError("no model given: set model.path to a local folder or a Hugging Face hub id")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise GenerationError(f"model folder {path} has no config.json: not a Hugging Face model folder")
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise GenerationError(
                f"model folder {path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                "save the tokenizer next to the model with tokenizer.save_pretrained(folder)"
            )
        return str(path.resolve()), True
    if path.exists():
        raise GenerationError(f"model path {path} is a file; expected a model folder or a hub id")
    if looks_like_path(model):
        raise GenerationError(f"model folder {path} does not exist")
    return model, False


def _register_custom_model(source: str, is_local: bool) -> None:
    """The LSTM baseline is not a transformers architecture: register it before loading."""
    if not is_local:
        return
    try:
        model_type = json.loads((Path(source) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise GenerationError(f"cannot read {source}/config.json: {exc}") from exc
    if model_type == LSTM_MODEL_TYPE:
        try:
            from core.generation.lstm import register_custom_models
        except ImportError as exc:
            raise GenerationError(
                f"{source} is a '{LSTM_MODEL_TYPE}' model but core.generation.lstm is not available: {exc}"
            ) from exc
        register_custom_models()


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationError(f"device {device!r} requested but CUDA is not available")
    return device


def _pick_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise GenerationError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def context_window_of(config: Any, tokenizer: Any) -> int:
    """Positions the model can attend to, from its config; the tokenizer's limit as fallback."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in _WINDOW_KEYS:
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048


@dataclass
class SharedModel:
    """Weights, tokenizer and worker of one loaded model; shared by every generator using it."""

    key: tuple[Any, ...]
    source: str
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    executor: concurrent.futures.ThreadPoolExecutor
    users: int = 0
    batcher: Any = None  # ContinuousBatcher, started by the first generator that wants batching
    processor: Any = None  # a vision-language model's processor (core/generation/vision.py)
    stats: dict[str, int] = field(default_factory=lambda: {"runs": 0, "generated_tokens": 0})
    stats_lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, **increments: int) -> None:
        with self.stats_lock:
            for name, n in increments.items():
                self.stats[name] = self.stats.get(name, 0) + n


_CACHE: dict[tuple[Any, ...], concurrent.futures.Future[SharedModel]] = {}
_CACHE_LOCK = threading.Lock()


def _load_blocking(key: tuple[Any, ...], source: str, is_local: bool, adapter: str | None, device: str, dtype: str,
                   trust_remote_code: bool, quantize: str | None = None) -> SharedModel:
    import torch
    from transformers import AutoConfig, AutoTokenizer

    _register_custom_model(source, is_local)
    device = _pick_device(device)
    torch_dtype = _pick_dtype(dtype, device)
    tokenizer_source = adapter if adapter and any((Path(adapter) / n).is_file() for n in TOKENIZER_FILES) else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=trust_remote_code)
    except Exception as exc:
        where = "local folder" if is_local else "hub id (not found locally, and the hub was unreachable or has no such model)"
        raise GenerationError(f"cannot load the tokenizer of {source} ({where}): {exc}") from exc
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = vision.model_class(config).from_pretrained(source, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise GenerationError(f"cannot load model {source}: {type(exc).__name__}: {exc}") from exc
    if adapter:
        try:
            from peft import PeftModel

            # Merged once at load: no adapter overhead per token, and batching sees a plain model.
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        except Exception as exc:
            raise GenerationError(f"cannot apply LoRA adapter {adapter} to {source}: {exc}") from exc
    model.to(device).eval()
    if quantize:
        from core.generation.quantize import quantize_model

        model = quantize_model(model, quantize, device)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="personabot-generate")
    log.info("loaded %s on %s (%s)", source, device, str(torch_dtype).removeprefix("torch."))
    dtype_name = "int8 linear layers, float32 elsewhere" if quantize else str(torch_dtype).removeprefix("torch.")
    processor = vision.load_processor(source, config, trust_remote_code)  # None for text-only models
    return SharedModel(key, source, model, tokenizer, device, dtype_name, executor, processor=processor)


async def acquire_model(
    model: str, *, adapter: str | None = None, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False,
    quantize: str | None = None,
) -> SharedModel:
    """Load a model once per process; later callers with the same arguments share it."""
    source, is_local = resolve_source(model)
    if adapter:
        adapter = str(Path(adapter).expanduser().resolve())
        if not Path(adapter).is_dir():
            raise GenerationError(f"LoRA adapter folder {adapter} does not exist")
    key = (source, adapter, device, dtype, trust_remote_code, quantize)
    with _CACHE_LOCK:
        future = _CACHE.get(key)
        if future is None:
            future = concurrent.futures.Future()
            _CACHE[key] = future
            owner = True
        else:
            owner = False
    if owner:
        try:
            shared = await asyncio.to_thread(_load_blocking, key, source, is_local, adapter, device, dtype, trust_remote_code, quantize)
        except BaseException as exc:
            with _CACHE_LOCK:
                _CACHE.pop(key, None)
            future.set_exception(exc if isinstance(exc, GenerationError) else GenerationError(f"loading {source} failed: {exc}"))
            raise
        future.set_result(shared)
    shared = await asyncio.wrap_future(future)
    with _CACHE_LOCK:
        shared.users += 1
    return shared


async def release_model(shared: SharedModel) -> bool:
    """Drop one user of a shared model; the last one frees it. True when it was freed."""
    with _CACHE_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return False
        _CACHE.pop(shared.key, None)
    if shared.batcher is not None:
        await shared.batcher.aclose()
    shared.executor.shutdown(wait=False)
    return True


# --- one generation ------------------------------------------------------------------
class _Job:
    """Shared between the event loop and the worker thread: why a generation should stop."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # time.monotonic()
        self.cancelled = threading.Event()
        self.timed_out = False

    def should_stop(self) -> bool:
        if self.cancelled.is_set():
            return True
        if time.monotonic() >= self.deadline:
            self.timed_out = True
            return True
        return False


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end a reply: eos, and any other control token (e.g. a forged next turn)."""
    ids: set[int] = set()
    for source in (model.generation_config.eos_token_id, tokenizer.eos_token_id, tokenizer.all_special_ids):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(i for i in source if isinstance(i, int))
    return sorted(ids)


class TransformersGenerator:
    """The :class:`core.ports.Generator` for local Hugging Face models. Build with :meth:`load`."""

    def __init__(self, shared: SharedModel, *, context_window: int | None = None) -> None:
        """Use :meth:`load`; this wraps an already loaded :class:`SharedModel`."""
        self._shared = shared
        self.model = shared.model
        self.tokenizer = shared.tokenizer
        self.name = f"transformers:{shared.source}"
        self.context_window = context_window or context_window_of(shared.model.config, shared.tokenizer)
        self.renderer = PromptRenderer(shared.tokenizer)
        self.vision = vision.VisionPrompt(shared.processor) if shared.processor is not None else None  # turns with images
        self.stop_ids = _stop_ids(shared.model, shared.tokenizer)
        self._pad_id = shared.tokenizer.pad_token_id if shared.tokenizer.pad_token_id is not None else self.stop_ids[0] if self.stop_ids else 0
        self._inflight: dict[asyncio.Future[Any], _Job] = {}
        self._interrupts = Interrupts()
        self._batched = False
        self._closed = False

    @classmethod
    async def load(
        cls,
        model: str,
        *,
        adapter: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        context_window: int | None = None,
        trust_remote_code: bool = False,
        batching: bool | None = None,
        max_batch_size: int = 16,
        max_queue: int = 256,
        max_active_per_user: int | None = None,
        max_waiting_per_user: int | None = None,
        cache_tokens: int | None = None,
        engine: str = "auto",
        compile: bool = False,
        quantize: str | None = None,
    ) -> "TransformersGenerator":
        """Load ``model`` (a local folder, checked first, or a hub id) once per process.

        ``batching``: True/False, or None for "when the model supports it" (any model on
        transformers' attention interface; not the LSTM baseline). The batch options are
        those of :class:`core.generation.batching.ContinuousBatcher` (``engine``: ``auto``,
        ``static`` or ``transformers``; ``compile``: ``torch.compile`` the static engine's
        decode step); the first generator of a shared model sets them. ``quantize="int8"``:
        int8 linear layers on a CPU (:mod:`core.generation.quantize`).
        """
        shared = await acquire_model(model, adapter=adapter, device=device, dtype=dtype, trust_remote_code=trust_remote_code, quantize=quantize)
        try:
            generator = cls(shared, context_window=context_window)
            if batching is not False and shared.batcher is None and shared.processor is None:
                generator._start_batcher(
                    required=batching is True, max_batch_size=max_batch_size, max_queue=max_queue,
                    max_active_per_user=max_active_per_user, max_waiting_per_user=max_waiting_per_user, cache_tokens=cache_tokens,
                    engine=engine, compile=compile,
                )
            generator._batched = batching is not False and shared.batcher is not None
            return generator
        except BaseException:
            await release_model(shared)
            raise

    def _start_batcher(self, *, required: bool, **options: Any) -> None:
        from core.generation.batching import ContinuousBatcher, supports_batching

        if not supports_batching(self.model):
            if required:
                raise GenerationError(f"{self._shared.source} cannot be batched (not an attention model); set batching off")
            return
        batcher = ContinuousBatcher(self.model, self.tokenizer, self.stop_ids, context_window=self.context_window, **options)
        try:
            batcher.start()  # quick, and on the loop: two loads of one model cannot both start one
        except GenerationError as exc:
            if required:
                raise
            log.warning("%s: falling back to one generation at a time: %s", self._shared.source, exc)
            return
        self._shared.batcher = batcher

    # --- the port ------------------------------------------------------------------
    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.renderer.count(messages)

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The exact token ids :meth:`stream` feeds the model for ``messages``."""
        return self.renderer.encode(messages)

    def _budget(self, prompt_len: int, params: GenerationParams) -> int:
        room = self.context_window - prompt_len
        if room < 1:
            raise GenerationError(
                f"the prompt takes {prompt_len} tokens but the model's context window is {self.context_window}; "
                "trim the history with count_tokens() first"
            )
        return min(params.max_new_tokens, room)

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if self._closed:
            raise GenerationError("the generator is closed")
        params = request.params
        if params.max_new_tokens < 1:
            raise GenerationError("max_new_tokens must be at least 1")
        tools = request.tools if self.renderer.supports_tools else ()  # off for templates without tools
        with_images = self.vision is not None and any(message.images for message in request.messages)
        ids, images = self.vision.encode(request.messages, tools) if with_images else (self.renderer.encode(request.messages, tools), {})
        max_new = self._budget(len(ids), params)
        if self._batched and params.seed is None and not images:
            chunks = self._stream_batched(ids, params, max_new, request)
        else:
            chunks = self._stream_sequential(ids, params, max_new, request.conversation_id, images)
        return tool_call_stream(chunks) if tools and request.tool_choice != "none" else chunks

    def cancel(self, conversation_id: str) -> int:
        """Stop in-flight generation for one conversation (/reset, /forget); returns how many.

        Each stopped stream ends with a ``CANCELLED`` chunk and its model work stops.
        """
        return self._interrupts.fire(conversation_id)

    async def _stream_sequential(self, ids: list[int], params: GenerationParams, max_new: int, conversation_id: str, images: dict[str, Any] | None = None) -> AsyncIterator[Chunk]:
        from transformers import AsyncTextIteratorStreamer

        job = _Job(time.monotonic() + params.timeout_s)
        stops = (*params.stop, *self.renderer.stop_strings)
        streamer = AsyncTextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._shared.executor, self._generate_blocking, ids, params, max_new, stops, streamer, job, images)
        self._inflight[future] = job
        future.add_done_callback(lambda done: self._inflight.pop(done, None))

        async def finish() -> FinishReason:
            try:
                generated = await future
            except GenerationError:
                raise
            except Exception as exc:
                raise GenerationError(f"generation failed: {type(exc).__name__}: {exc}") from exc
            if job.timed_out:
                return FinishReason.TIMEOUT
            if generated and generated[-1] in self.stop_ids:
                return FinishReason.STOP
            return FinishReason.LENGTH if len(generated) >= max_new else FinishReason.STOP

        with self._interrupts.watch(conversation_id) as interrupt:
            async for chunk in relay(streamer, stop_producer=job.cancelled.set, finish=finish, stops=stops, deadline=job.deadline, interrupt=interrupt):
                yield chunk

    async def _stream_batched(self, ids: list[int], params: GenerationParams, max_new: int, request: GenerationRequest) -> AsyncIterator[Chunk]:
        deadline = time.monotonic() + params.timeout_s
        job = self._shared.batcher.submit(ids, params, max_new, user=request.user_id or request.conversation_id, conversation=request.conversation_id, tenant=request.tenant)
        with self._interrupts.watch(request.conversation_id) as interrupt:
            stops = (*params.stop, *self.renderer.stop_strings)
            async for chunk in relay(job.pieces, stop_producer=job.cancel, finish=job.finish, stops=stops, deadline=deadline, interrupt=interrupt):
                yield chunk

    def _generation_config(self, params: GenerationParams, max_new: int, stops: Sequence[str]) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = max_new
        config.max_length = None
        config.min_new_tokens = None
        config.do_sample = params.temperature > 0
        if config.do_sample:
            config.temperature, config.top_p = params.temperature, params.top_p
            config.top_k = params.top_k if params.top_k > 0 else None
        else:
            config.temperature = config.top_p = config.top_k = None
        config.repetition_penalty = params.repetition_penalty
        config.eos_token_id = self.stop_ids or None
        config.pad_token_id = self._pad_id
        config.stop_strings = list(stops) or None
        return config

    def _generate_blocking(self, ids: list[int], params: GenerationParams, max_new: int, stops: Sequence[str], streamer: Any, job: _Job, images: dict[str, Any] | None = None) -> list[int]:
        """Runs on the worker thread. Always ends the streamer, so the consumer never hangs."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _StopWhenTold(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), job.should_stop(), dtype=torch.bool, device=input_ids.device)

        if job.should_stop():  # cancelled or expired while queued behind another generation
            streamer.end()
            return []
        try:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            input_ids = torch.tensor([ids], device=self.model.device)
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=self._generation_config(params, max_new, stops),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_StopWhenTold()]),
                    tokenizer=self.tokenizer if stops else None,
                    **vision.on_device(images or {}, self.model),
                )
        except BaseException:
            streamer.end()
            raise
        generated = output[0, len(ids) :].tolist()
        self._shared.count(runs=1, generated_tokens=len(generated))
        return generated

    async def drain(self) -> None:
        """Wait until this generator's worker-thread jobs are done (tests, shutdown)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def health(self) -> dict[str, Any]:
        shared = self._shared
        with shared.stats_lock:
            stats = dict(shared.stats)
        info = {
            "backend": "transformers",
            "ok": not self._closed,
            "model": shared.source,
            "device": shared.device,
            "dtype": shared.dtype,
            "context_window": self.context_window,
            "chat_template": self.renderer.has_template,
            "batching": self._batched,
            **stats,
        }
        if self._batched:
            batch = shared.batcher.info()
            info["generated_tokens"] += batch.pop("generated_tokens")
            info["runs"] += batch["admitted"]
            info.update(batch)
        return info

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._interrupts.fire_all()
        for job in list(self._inflight.values()):
            job.cancelled.set()
        await self.drain()
        await release_model(self._shared)
