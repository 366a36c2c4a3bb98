"""Generation throughput and latency: continuous batching vs one ``model.generate`` at a time.

    python bench/generation.py                       # bundled default model, or a random one
    python bench/generation.py --model path/to/model --concurrency 1,4,16,32 --new-tokens 48

Prints, per number of concurrent conversations: generated tokens/s, p50/p95 time to
first token, p50 time per token, the same prompts through sequential ``model.generate``
and the speed-up; a roofline (weight bytes per decode step against measured memory
bandwidth); and second-turn time to first token after a ~1,000-token history with and
without KV-cache reuse. Timings are token-level (taken where tokens come out of the
model), so they do not depend on how text is split into chunks.

Without ``core/assets/default_model`` (and no ``--model``) a randomly initialised model
of the default's shape is used (Llama-style, 6 layers, d=384, vocab 8192) and the output
says so; speed depends on shape, not on what the weights learned. Special-token logits
of the random model are zeroed so every reply runs to ``--new-tokens``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.events import ChatMessage, GenerationParams, GenerationRequest  # noqa: E402
from core.settings import GenerationSettings  # noqa: E402

DEFAULT_MODEL = ROOT / "core" / "assets" / "default_model"
SYSTEM = "You are Mira, a friendly companion. Keep replies short, warm and curious. Ask a follow-up question."


def chitchat_lines(limit: int) -> list[str]:
    """Real user messages from the bundled open dialogue corpus (prompts and history)."""
    import chitchat_dataset

    lines: list[str] = []
    for conv in chitchat_dataset.Dataset().values():
        for turn in conv["messages"]:
            text = " ".join(m["text"] for m in turn).strip()
            if len(text) > 20:
                lines.append(text)
            if len(lines) >= limit:
                return lines
    return lines


def random_model(folder: Path) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from training.tokenizer import train_tokenizer

    tok = train_tokenizer(chitchat_lines(40_000), vocab_size=8192)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                         num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.all_special_ids] = 0.0
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class TokenClock:
    """Token-level timestamps per conversation, taken from the batcher's output callback."""

    def __init__(self, batcher) -> None:
        self.batcher, self.first, self.last, self.count = batcher, {}, {}, {}
        self._original = batcher._on_output
        batcher._on_output = self._spy

    def _spy(self, output) -> None:
        request = self.batcher._active.get(output.request_id)
        if request is not None and len(output.generated_tokens) > len(request.generated):
            now = time.perf_counter()
            self.first.setdefault(request.conversation, now)
            self.last[request.conversation] = now
            self.count[request.conversation] = len(output.generated_tokens)
        self._original(output)


def sequential(model, tok, prompts: list[list[int]], params: GenerationParams, stop_ids: list[int]) -> tuple[float, list[float], list[float], int]:
    """The same prompts through ``model.generate``, one at a time: tokens/s, TTFTs, per-token latencies."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.prompt_seen = False

        def put(self, value) -> None:
            if self.prompt_seen:
                self.times.append(time.perf_counter())
            self.prompt_seen = True

        def end(self) -> None:
            pass

    ttfts, per_token, tokens = [], [], 0
    start = time.perf_counter()
    for ids in prompts:
        clock, t0 = Clock(), time.perf_counter()
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), streamer=clock,
                                 max_new_tokens=params.max_new_tokens, repetition_penalty=params.repetition_penalty,
                                 **({"do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
                                    if params.temperature > 0 else {"do_sample": False}),
                                 eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)
        n = out.shape[1] - len(ids)
        tokens += n
        ttfts.append(clock.times[0] - t0)
        if n > 1:
            per_token.append((clock.times[-1] - clock.times[0]) / (n - 1))
    return tokens / (time.perf_counter() - start), ttfts, per_token, tokens


def memory_bandwidth() -> float:
    """Bytes/s of a large tensor copy (read + write), the ceiling for weight streaming."""
    import torch

    src = torch.ones(64 * 1024 * 1024, dtype=torch.float32)  # 256 MiB, far beyond any cache
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = max(best, 2 * src.numel() * 4 / (time.perf_counter() - t0))
    return best


async def run_batched(gen, prompts: list[tuple[ChatMessage, ...]], params: GenerationParams, tag: str):
    batcher = gen._shared.batcher
    clock = TokenClock(batcher)
    steps = []  # forward passes (both batch engines embed the input once per pass)
    hook = gen.model.get_input_embeddings().register_forward_pre_hook(lambda m, a: steps.append(1))

    async def one(i: int, messages) -> None:
        request = GenerationRequest(messages, params, conversation_id=f"{tag}-{i}", user_id=f"user-{i}")
        async for _ in gen.stream(request):
            pass

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, m) for i, m in enumerate(prompts)))
        wall = time.perf_counter() - t0
    finally:
        hook.remove()
        batcher._on_output = clock._original
    tokens = sum(clock.count.values())
    ttfts = [clock.first[c] - t0 for c in clock.first]
    per_token = [(clock.last[c] - clock.first[c]) / (clock.count[c] - 1) for c in clock.first if clock.count[c] > 1]
    return tokens / wall, ttfts, per_token, tokens, len(steps) / wall


async def second_turn(gen, lines: list[str], params: GenerationParams, repeats: int = 3) -> tuple[float, float, int]:
    """TTFT of turn 2 after a ~1,000-token history: cached prefix vs the same length unseen."""
    batcher = gen._shared.batcher
    history: list[ChatMessage] = [ChatMessage("system", SYSTEM)]
    i = 0
    while gen.count_tokens(history) < 1000:
        history.append(ChatMessage("user" if len(history) % 2 else "assistant", lines[i % len(lines)]))
        i += 1
    one = GenerationParams(max_new_tokens=1, temperature=params.temperature, timeout_s=600)
    reuse, fresh = [], []
    for r in range(repeats):
        convo = [*history, ChatMessage("user", f"({r}) {lines[-1 - r]}")]
        reply = "".join([c.text async for c in gen.stream(GenerationRequest(tuple(convo), params, conversation_id=f"t1-{r}"))])
        turn2 = (*convo, ChatMessage("assistant", reply), ChatMessage("user", "What do you think about that?"))
        unseen = (ChatMessage("system", f"[{r}] " + SYSTEM), *turn2[1:])  # differs from token 1: no prefix to reuse
        for messages, out in ((turn2, reuse), (unseen, fresh)):
            clock = TokenClock(batcher)
            try:
                t0 = time.perf_counter()
                async for _ in gen.stream(GenerationRequest(messages, one, conversation_id=f"t2-{r}-{len(out)}-{id(out)}")):
                    pass
            finally:
                batcher._on_output = clock._original
            out.append(next(iter(clock.first.values())) - t0)
    return statistics.median(reuse), statistics.median(fresh), gen.count_tokens(turn2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model, else a random one)")
    parser.add_argument("--concurrency", default="1,4,16,32")
    parser.add_argument("--new-tokens", type=int, default=48)
    bot = GenerationSettings()  # the bot's own sampling defaults
    parser.add_argument("--temperature", type=float, default=bot.temperature)
    parser.add_argument("--repetition-penalty", type=float, default=bot.repetition_penalty)
    parser.add_argument("--skip-second-turn", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice, one per core)")
    parser.add_argument("--sequential-max", type=int, default=8, help="sequential baseline runs at most this many prompts")
    parser.add_argument("--engine", default="auto", choices=("auto", "static", "transformers"), help="batch engine")
    args = parser.parse_args()

    import torch

    from core.generation.transformers_backend import TransformersGenerator

    if args.threads:
        torch.set_num_threads(args.threads)
    levels = [int(x) for x in args.concurrency.split(",")]
    tmp = tempfile.TemporaryDirectory()
    if args.model:
        path, what = Path(args.model), f"model {args.model}"
    elif DEFAULT_MODEL.is_dir():
        path, what = DEFAULT_MODEL, "bundled default model (core/assets/default_model)"
    else:
        path = random_model(Path(tmp.name) / "random")
        what = "RANDOMLY INITIALISED model of the default's shape (core/assets/default_model not found)"
    print(f"# {what}, batch engine {args.engine}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    gen = await TransformersGenerator.load(str(path), batching=True, max_batch_size=max(levels), max_queue=4 * max(levels),
                                           max_active_per_user=max(levels), context_window=2048, engine=args.engine)
    params = GenerationParams(max_new_tokens=args.new_tokens, temperature=args.temperature, top_p=0.95, top_k=50,
                              repetition_penalty=args.repetition_penalty, timeout_s=600)
    lines = chitchat_lines(2000)
    weights = sum(p.numel() * p.element_size() for p in gen.model.parameters())
    bandwidth = memory_bandwidth()
    print(f"# parameters {sum(p.numel() for p in gen.model.parameters()) / 1e6:.1f} M, weight bytes per decode step {weights / 1e6:.1f} MB, "
          f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s, {args.new_tokens} new tokens per reply")
    await run_batched(gen, [(ChatMessage("system", SYSTEM), ChatMessage("user", lines[0]))] * 2, params, "warmup")

    print(f"{'conc':>4} {'batched tok/s':>13} {'TTFT p50':>9} {'TTFT p95':>9} {'tok p50':>8} {'seq tok/s':>9} {'speed-up':>8} "
          f"{'steps/s':>8} {'weights GB/s':>12} {'of bw':>6}")
    for n in levels:
        convos = [(ChatMessage("system", SYSTEM), ChatMessage("user", lines[(7 * i + n) % len(lines)])) for i in range(n)]
        rate, ttfts, per_token, _, steps_per_s = await run_batched(gen, convos, params, f"c{n}")
        prompts = [gen.prompt_ids(c) for c in convos[: args.sequential_max]]
        seq_rate, _, _, _ = await asyncio.to_thread(sequential, gen.model, gen.tokenizer, prompts, params, gen.stop_ids)
        achieved = weights * steps_per_s
        print(f"{n:>4} {rate:>13.1f} {pct(ttfts, .5) * 1e3:>7.0f}ms {pct(ttfts, .95) * 1e3:>7.0f}ms {pct(per_token, .5) * 1e3:>6.1f}ms "
              f"{seq_rate:>9.1f} {rate / seq_rate:>7.1f}x {steps_per_s:>8.1f} {achieved / 1e9:>12.2f} {achieved / bandwidth:>6.1%}")

    if args.skip_second_turn:
        await gen.aclose()
        return
    reuse, fresh, length = await second_turn(gen, lines, params)
    print(f"# second turn, {length}-token prompt: TTFT with cache reuse {reuse * 1e3:.0f} ms, "
          f"without (same length, unseen prefix) {fresh * 1e3:.0f} ms: {fresh / reuse:.1f}x")
    await gen.aclose()
    tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
