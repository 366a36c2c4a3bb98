"""Building blocks for plugin tests: bot settings with a [plugins] section, an App, fakes."""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bots.app_factory import bot_app
from core.runtime import Runtime
from core.plugins import setup_plugins
from core.settings import BotSettings


def bot_settings(folder: Path, plugins: dict[str, Any], **overrides: Any) -> BotSettings:
    """Settings as if read from ``folder/bot.toml`` (relative plugin paths resolve there)."""
    data = {
        "name": "test",
        "admins": ["telegram:999"],
        "model": {"backend": "scripted"},
        "limits": {"user_burst": 1000, "chat_burst": 1000},  # tests talk fast
        "plugins": plugins,
    }
    data.update(overrides)
    return BotSettings.model_validate(data).model_copy(update={"source": folder / "bot.toml"})


@asynccontextmanager
async def plugin_app(
    settings: BotSettings,
    *,
    replies: Sequence[str] = ("Model reply.",),
    embedder: Any = None,
    store: Any = None,
) -> AsyncIterator[Runtime]:
    from core.generation.scripted import ScriptedGenerator
    from core.storage.sqlite import SQLiteStore

    async with bot_app(
        settings,
        store=store or SQLiteStore(":memory:"),
        generator=ScriptedGenerator(list(replies)),
        embedder=embedder,
        features=[setup_plugins],
    ) as app:
        yield app


def write_plugin(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


_TOKEN = re.compile(r"[\u3400-\u9fff]|\w+")


class HashingEmbedder:
    """A deterministic bag-of-words Embedder: texts sharing words are similar (CJK by character)."""

    dimension = 512

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.casefold()):
                bucket = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little")
                out[row, bucket % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out
