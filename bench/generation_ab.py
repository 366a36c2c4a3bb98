"""CPU per generated token of the in-process backend, for several source trees in turn.

    git worktree add /tmp/before 8fc033e
    python bench/generation_ab.py /tmp/before . [--rounds 6] [--chats 1,32] [--model PATH]

This machine's speed drifted by up to 30% within minutes, more than most single changes
save (docs/performance.md, session 5). So the trees run in turn, round after round
(every other round in reverse order), each measurement in a fresh process that imports
that tree's ``core``. Printed per tree and level: the median CPU ms per token, and the
median of each round's ratio to the first tree (which cancels most of the drift). Replies
stream through ``TransformersGenerator.stream`` with today's sampling defaults written out
(older trees had other defaults, and every tree must sample alike), 1 torch thread, the
bench's persona prompt and real first messages from the chitchat corpus.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


async def measure(model: str, chats: int, prompts: list[list[str]]) -> float:
    """CPU ms per generated token over ``prompts``, ``chats`` at a time (runs in the tree's process)."""
    import torch

    from core.events import ChatMessage, GenerationParams, GenerationRequest
    from core.generation.transformers_backend import TransformersGenerator

    torch.set_num_threads(1)
    gen = await TransformersGenerator.load(model, batching=True, max_batch_size=32, max_queue=256, max_active_per_user=32)
    params = GenerationParams(max_new_tokens=48, temperature=0.8, top_p=0.95, top_k=50, repetition_penalty=1.0, timeout_s=600)
    queue: list[tuple[str, tuple[ChatMessage, ...]]] = []

    async def chat() -> None:
        while queue:
            name, messages = queue.pop()
            async for _ in gen.stream(GenerationRequest(messages, params, conversation_id=name, user_id=name)):
                pass

    stats = gen._shared.batcher.stats
    try:
        system = prompts[0][0]
        queue[:] = [(f"warm{i}", (ChatMessage("system", system), ChatMessage("user", "Hi! How was your day?"))) for i in range(2)]
        await asyncio.gather(*(chat() for _ in range(2)))  # the first steps allocate and page in
        queue[:] = [(f"c{i}", (ChatMessage("system", s), ChatMessage("user", t))) for i, (s, t) in enumerate(prompts)]
        before, cpu = stats["generated_tokens"], time.process_time()
        await asyncio.gather(*(chat() for _ in range(chats)))
        return 1e3 * (time.process_time() - cpu) / max(stats["generated_tokens"] - before, 1)
    finally:
        await gen.aclose()


def run_in(tree: Path, model: str, chats: int, prompt_file: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--measure", model, str(chats), str(prompt_file)], cwd=tree, env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", type=Path, help="source trees; the first is the reference")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chats", default="1,32")
    parser.add_argument("--model", default=str(BENCH.parent / "core" / "assets" / "default_model"))
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        model, chats, prompt_file = args.measure
        print(asyncio.run(measure(model, int(chats), json.loads(Path(prompt_file).read_text()))))
        return
    if len(args.trees) < 2:
        parser.error("name at least two source trees")
    sys.path.insert(0, str(BENCH))
    from generation import SYSTEM, chitchat_lines

    levels = [int(x) for x in args.chats.split(",")]
    lines = [line for line in chitchat_lines(4000) if len(line) <= 200]
    figures: dict[tuple[Path, int], list[float]] = {}
    ratios: dict[tuple[Path, int], list[float]] = {}
    prompt_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"generation_ab_{os.getpid()}.json"
    print(f"# {len(args.trees)} trees, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    try:
        for r in range(args.rounds):
            order = args.trees if r % 2 == 0 else list(reversed(args.trees))
            for n in levels:
                prompts = [(SYSTEM, lines[(7 * i + 13 * r + 101 * n) % len(lines)]) for i in range(2 * max(n, 8))]
                prompt_file.write_text(json.dumps(prompts))
                got = {tree: run_in(tree.resolve(), args.model, n, prompt_file) for tree in order}
                for tree, value in got.items():
                    figures.setdefault((tree, n), []).append(value)
                    ratios.setdefault((tree, n), []).append(value / got[args.trees[0]])
            print(f"# round {r + 1} done, load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        prompt_file.unlink(missing_ok=True)
    print(f"{'tree':<40} {'chats':>5} {'CPU ms/token (median)':>22} {'vs first (median ratio)':>24}")
    for tree in args.trees:
        for n in levels:
            print(f"{str(tree):<40} {n:>5} {statistics.median(figures[tree, n]):>22.2f} {statistics.median(ratios[tree, n]):>24.2f}")


if __name__ == "__main__":
    main()
