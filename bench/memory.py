"""Resident memory of the demo bot, component by component, in one process.

    python3 bench/memory.py [--bot bots/demo.toml]

Prints the RSS after each step (Python + personabot imports, torch, the model, the store,
the embedder, one answered message) and the process's peak, from /proc/self/status.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class Steps:
    def __init__(self) -> None:
        self.last = status_kib("VmRSS")
        print(f"{'step':<44} {'RSS MiB':>8} {'added':>8}")
        print(f"{'python + personabot CLI imports':<44} {self.last / 1024:8.0f} {'':>8}")

    def mark(self, what: str) -> None:
        now = status_kib("VmRSS")
        print(f"{what:<44} {now / 1024:8.0f} {(now - self.last) / 1024:+8.0f}")
        self.last = now


async def main(bot: Path) -> None:
    import bots.cli  # noqa: F401  (what `personabot` imports before anything runs)

    steps = Steps()
    import torch  # noqa: F401

    steps.mark("torch imported")
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM  # noqa: F401  (the lazy modules serving touches)

    steps.mark("transformers imported")
    from adapters.console.adapter import ConsoleOutbox, console_event
    from bots.app_factory import bot_app
    from core.bootstrap import build_generator, load_embedder
    from core.settings import load_bot_settings
    from core.storage.sqlite import SQLiteStore

    settings = load_bot_settings(bot)
    generator = await build_generator(settings)
    steps.mark(f"model loaded ({settings.model.path})")
    embedder = await load_embedder(None, 32)
    steps.mark("embedder loaded (all-MiniLM-L6-v2)")
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=generator, embedder=embedder) as running:
        steps.mark("store opened, features set up")
        await running.dispatcher.feed(console_event("Hello! I love hiking in the mountains.", "bench"), ConsoleOutbox(stream=False))
        print()
        steps.mark("one message answered")
    print(f"{'peak (VmHWM)':<44} {status_kib('VmHWM') / 1024:8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bot", type=Path, default=ROOT / "bots" / "demo.toml")
    asyncio.run(main(parser.parse_args().bot))
