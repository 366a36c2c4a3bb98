"""personabot's in-process generation beside llama.cpp's ``llama-server``, same weights, one run.

    python bench/generation_vs_llama.py --llama-cpp /path/to/llama.cpp            # bundled + random 90M
    python bench/generation_vs_llama.py --models bundled --concurrency 1,8,32 --repeats 3
    python bench/generation_vs_llama.py --quantize                                 # int8 beside Q8_0 too

For each model: the Hugging Face folder is converted to GGUF (f32; ``q8_0`` with
``--quantize``) with llama.cpp's converter, ``llama-server`` is started with one slot per
concurrent chat at most and the same thread count, and the same prompts (the same token
ids: a persona system prompt and a real first message from the chitchat corpus) go to
both at 1, 8 and 32 concurrent chats, interleaved level by level so background load hits
both alike. Sampling is the bot's default (temperature 0.8, top-p 0.95, top-k 50,
repetition penalty 1.0, over the whole sequence when set) on both; each reply is at most
``--new-tokens`` tokens. Printed per row: tokens/s over the wall time, time to first token
p50/p95, personabot/llama-server, and CPU time per generated token on each side (our
process; the server process), which a busy machine inflates far less than wall time.
Medians over ``--repeats``; the load average is printed per row (the machine is shared).

Models: ``bundled`` (core/assets/default_model, whatever is there) and ``random90m``
(random Llama, 12 layers x 768, the bundled tokenizer; special-token logits zeroed so
replies run to the limit on both sides). A missing or failing peer is reported and
personabot's rows still print.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_support import percentile  # noqa: E402
from core.events import ChatMessage, GenerationParams, GenerationRequest  # noqa: E402
from core.settings import GenerationSettings  # noqa: E402
from generation import SYSTEM, TokenClock, chitchat_lines  # noqa: E402
from llama_peer import LlamaServer, PeerError, convert, cpu_seconds, find_server, run_level  # noqa: E402

DEFAULT_MODEL = ROOT / "core" / "assets" / "default_model"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def random_llama(folder: Path, tokenizer_dir: Path, layers: int = 12, hidden: int = 768, intermediate: int = 2048) -> Path:
    """A random Llama of the issue's shape (about 90M parameters with an 8k vocabulary)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.all_special_ids] = 0.0
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, folder / name)
    return folder


async def personabot_level(gen, convos: list[tuple[ChatMessage, ...]], params: GenerationParams, tag: str,
                           concurrency: int) -> tuple[float, list[float], int]:
    """``convos`` by ``concurrency`` chats at a time through ``gen.stream``: (tokens/s over the wall time, TTFTs, tokens)."""
    batcher = gen._shared.batcher
    clock = TokenClock(batcher)
    queue = list(reversed(list(enumerate(convos))))
    sent: dict[str, float] = {}

    async def chat(worker: int) -> None:
        while queue:
            i, messages = queue.pop()
            conversation = f"{tag}-{i}"
            sent[conversation] = time.perf_counter()
            request = GenerationRequest(messages, params, conversation_id=conversation, user_id=f"{tag}-user-{worker}")
            async for _ in gen.stream(request):
                pass

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(chat(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    finally:
        batcher._on_output = clock._original
    tokens = sum(clock.count.values())
    return tokens / wall, [clock.first[c] - sent[c] for c in clock.first], tokens


def llama_sampling(params: GenerationParams) -> dict:
    """The same sampling on llama-server: penalty over the whole context (its -1 is refused), in
    generate's order, no min-p."""
    return {"n_predict": params.max_new_tokens, "temperature": params.temperature, "top_k": params.top_k, "top_p": params.top_p,
            "min_p": 0.0, "repeat_penalty": params.repetition_penalty, "repeat_last_n": 1 << 16,
            "samplers": ["penalties", "temperature", "top_k", "top_p"]}


def summary(runs: list[tuple[float, list[float], int, float]]) -> tuple[float, float, float, int, float]:
    """Medians over repeats of (tokens/s, TTFT p50, TTFT p95, tokens, CPU seconds per token)."""
    return (statistics.median(r[0] for r in runs), statistics.median(percentile(r[1], 0.5) for r in runs),
            statistics.median(percentile(r[1], 0.95) for r in runs), int(statistics.median(r[2] for r in runs)),
            statistics.median(r[3] / max(r[2], 1) for r in runs))


async def measured(work, cpu) -> tuple[float, list[float], int, float]:
    """``await work`` and the CPU seconds ``cpu()`` counted meanwhile (robust to a busy machine)."""
    before = cpu()
    rate, ttfts, tokens = await work
    return rate, ttfts, tokens, cpu() - before


def start_peer(name: str, path: Path, args, work: Path, quantize: str | None, *, slots: int, threads: int,
               slot_context: int) -> LlamaServer | None:
    """Convert ``path`` and start llama-server on it; None (and why, printed) when that fails."""
    server = None
    try:
        binary = find_server(args.llama_cpp)
        kind = "q8_0" if quantize else "f32"
        gguf = convert(path, work / f"{name}-{kind}.gguf", kind, args.llama_cpp)
        server = LlamaServer(binary, gguf, slots=slots, threads=threads, slot_context=slot_context, log=work / f"{name}-{kind}-server.log")
        server.wait_ready()
    except PeerError as exc:
        if server is not None:
            server.close()
        print(f"# peer llama-server NOT measured: {exc}")
        return None
    print(f"# peer: {server.command}")
    return server


async def bench_model(name: str, path: Path, args, work: Path, quantize: str | None) -> None:
    import torch

    from core.generation.transformers_backend import TransformersGenerator

    levels = [int(x) for x in args.concurrency.split(",")]
    params = GenerationParams(max_new_tokens=args.new_tokens, temperature=args.temperature, top_p=0.95, top_k=50,
                              repetition_penalty=args.repetition_penalty, timeout_s=600)
    gen = await TransformersGenerator.load(str(path), batching=True, max_batch_size=max(levels), max_queue=4 * max(levels),
                                           max_active_per_user=max(levels), engine=args.engine, compile=args.compile,
                                           quantize=quantize)
    server = None
    try:
        lines = [line for line in chitchat_lines(4000) if len(line) <= 200]  # prompts well inside a 256-token window
        # A fresh set of first messages per level and repeat: no side finds a whole prompt in its cache.
        convos = {(n, r): [(ChatMessage("system", SYSTEM), ChatMessage("user", lines[(7 * i + 13 * n + 101 * r) % len(lines)]))
                           for i in range(max(n, args.min_replies))] for n in levels for r in range(args.repeats)}
        prompts = {key: [gen.prompt_ids(c) for c in convos[key]] for key in convos}
        longest = max(len(p) for ps in prompts.values() for p in ps)
        n_params = sum(p.numel() for p in gen.model.parameters())
        label = f"{name}{' int8' if quantize else ''}"
        print(f"\n## {label}: {n_params / 1e6:.1f} M parameters (as loaded), vocabulary {gen.model.config.get_text_config().vocab_size}, "
              f"context {gen.context_window}, prompts {min(len(p) for ps in prompts.values() for p in ps)}-{longest} tokens, "
              f"engine {gen._shared.batcher.engine}{' compiled' if args.compile else ''}, torch {torch.get_num_threads()} threads")
        server = start_peer(name, path, args, work, quantize, slots=max(levels), threads=args.threads or torch.get_num_threads(),
                            slot_context=max(256, longest + args.new_tokens + 16))
        sampling = llama_sampling(params)
        warm = (ChatMessage("system", SYSTEM), ChatMessage("user", lines[-1]))
        await personabot_level(gen, [warm, warm], params, "warmup", 2)
        if server is not None:
            try:
                await run_level(server.url, [gen.prompt_ids(warm)] * 2, sampling, 2)
            except Exception as exc:
                print(f"# peer llama-server NOT measured: its first request failed: {type(exc).__name__}: {exc}")
                server.close()
                server = None
        print(f"{'chats':>5} {'personabot tok/s':>16} {'TTFT p50/p95':>15} {'llama-server tok/s':>18} {'TTFT p50/p95':>15} "
              f"{'ratio':>6} {'TTFT p95 ratio':>14} {'tokens (pb/ls)':>15} {'CPU ms/token (pb/ls)':>20} {'load':>5}")
        for n in levels:
            ours, theirs, loads = [], [], []
            for r in range(args.repeats):
                loads.append(os.getloadavg()[0])
                ours.append(await measured(personabot_level(gen, convos[n, r], params, f"{name}-{n}-{r}", n), time.process_time))
                if server is not None:
                    try:
                        pid = server.process.pid
                        theirs.append(await measured(run_level(server.url, prompts[n, r], sampling, n), lambda: cpu_seconds(pid)))
                    except Exception as exc:  # a peer failing mid-run: report, keep our rows
                        print(f"# llama-server failed at {n} chats: {type(exc).__name__}: {exc}; its log: {server.log_tail()}")
                        server.close()
                        server = None
            rate, p50, p95, tokens, cpu = summary(ours)
            row = f"{n:>5} {rate:>16.1f} {p50 * 1e3:>7.0f}/{p95 * 1e3:<6.0f}ms"
            if theirs:
                l_rate, l50, l95, l_tokens, l_cpu = summary(theirs)
                row += (f" {l_rate:>18.1f} {l50 * 1e3:>7.0f}/{l95 * 1e3:<6.0f}ms {rate / l_rate:>5.2f}x {p95 / l95:>13.2f}x"
                        f" {f'{tokens}/{l_tokens}':>15} {f'{cpu * 1e3:.2f}/{l_cpu * 1e3:.2f}':>20}")
            else:
                row += f" {'n/a':>18} {'':>15} {'':>6} {'':>14} {f'{tokens}/-':>15} {f'{cpu * 1e3:.2f}/-':>20}"
            print(f"{row} {statistics.median(loads):>5.1f}")
    finally:
        if server is not None:
            server.close()
        await gen.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="bundled,random90m")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--new-tokens", type=int, default=48)
    bot = GenerationSettings()  # the bot's own sampling defaults
    parser.add_argument("--temperature", type=float, default=bot.temperature)
    parser.add_argument("--repetition-penalty", type=float, default=bot.repetition_penalty)
    parser.add_argument("--repeats", type=int, default=1, help="runs per level (medians printed)")
    parser.add_argument("--min-replies", type=int, default=8, help="replies per level at least (1 chat: that many one after another)")
    parser.add_argument("--threads", type=int, default=None, help="torch and llama-server threads (default: torch's, one per core)")
    parser.add_argument("--engine", default="auto", choices=("auto", "static", "transformers"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the static engine's decode step")
    parser.add_argument("--quantize", action="store_true", help="also int8 (personabot) beside Q8_0 (llama-server)")
    parser.add_argument("--llama-cpp", type=Path, default=Path(os.environ["LLAMA_CPP"]) if os.environ.get("LLAMA_CPP") else None,
                        help="llama.cpp source tree (for convert_hf_to_gguf.py; build/bin/llama-server is found there too)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.new_tokens} new tokens per reply")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            if name == "bundled":
                path = DEFAULT_MODEL
            elif name == "random90m":
                path = random_llama(work / "random90m", DEFAULT_MODEL)
            else:
                path = Path(name)
                name = path.name
            for quantize in (None, "int8") if args.quantize else (None,):
                await bench_model(name, path, args, work, quantize)


if __name__ == "__main__":
    asyncio.run(main())
