"""Fakes and builders for personalization tests: a deterministic embedder and an App."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np

from bots.app_factory import bot_app
from core.runtime import Runtime
from core.events import ChatKind, Chunk, FinishReason, GenerationRequest, Reply
from core.generation.scripted import ScriptedGenerator
from core.personalization import setup_personalization
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox

_TOKENS = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)
_STOP = {
    "i", "my", "me", "am", "is", "are", "do", "does", "did", "the", "a", "an", "to", "of", "in", "what", "where",
    "who", "which", "how", "you", "your", "and", "or", "it", "that", "this", "m", "s", "about", "any", "some",
    "tell", "know", "remember", "can", "for", "with", "on", "at", "be", "was", "have", "has",
}


def _tokens(text: str) -> list[str]:
    out = []
    for token in _TOKENS.findall(text.casefold()):
        if any("\u4e00" <= ch <= "\u9fff" for ch in token):
            out += list(token)  # CJK: one token per character
        elif token not in _STOP:
            out.append(token[:4])  # crude stemming: "lives" and "live", "allergy" and "allergic" meet
    return out


class HashingEmbedder:
    """Bag of hashed words, L2-normalised: deterministic, instant, overlap-based similarity."""

    def __init__(self, dimension: int = 512) -> None:
        self.dimension = dimension
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimension, dtype=np.float32)
        for token in _tokens(text):
            digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm else vec

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)


CATALOG = [
    {"title": "Knife skills for home cooks", "description": "Chop, dice and slice vegetables for cooking.", "tags": ["cooking"]},
    {"title": "Baking bread at home", "description": "Flour, yeast and an oven: bake your first bread.", "tags": ["baking", "cooking"]},
    {"title": "Guitar chords for beginners", "description": "Play your first songs on the guitar.", "tags": ["music", "guitar"]},
    {"title": "Jazz listening guide", "description": "Great jazz music albums to start with.", "tags": ["music", "jazz"]},
    {"title": "Python programming basics", "description": "Variables, loops and functions in Python code.", "tags": ["programming"]},
    {"title": "Football tactics explained", "description": "Formations and pressing in football matches.", "tags": ["football", "sport"]},
]


def bot_settings(**personalization):
    limits = {"user_burst": 10_000, "chat_burst": 10_000}
    return make_settings(personalization=personalization, catalog=CATALOG, limits=limits)


@contextlib.asynccontextmanager
async def personal_app(
    db: Path | str = ":memory:", *, replies=None, embedder=None, settings=None, generator=None, context_window=2048,
    **personalization,
) -> AsyncIterator[Runtime]:
    generator = generator or ScriptedGenerator(replies or ["Nice to hear that!"], context_window=context_window)
    app = bot_app(
        settings or bot_settings(**personalization),
        store=SQLiteStore(db),
        generator=generator,
        embedder=embedder or HashingEmbedder(),
        features=[setup_personalization],
    )
    async with app as running:
        yield running


class ReplyOutbox(RecordingOutbox):
    """A RecordingOutbox that also keeps the Reply objects (privacy flag, attachment)."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[Reply] = []

    async def send(self, key, reply: Reply):  # type: ignore[no-untyped-def]
        self.replies.append(reply)
        return await super().send(key, reply)


async def say(app: Runtime, text: str, user: str = "telegram:1", chat: str | None = None, *, group: bool = False) -> ReplyOutbox:
    outbox = ReplyOutbox()
    kind = ChatKind.GROUP if group else ChatKind.PRIVATE
    await app.dispatcher.feed(make_event(text, user, chat, kind=kind), outbox)
    return outbox


def last_prompt(app: Runtime) -> str:
    """Everything the model saw for the last reply, as one string."""
    request = app.generator.requests[-1]
    return "\n".join(f"{m.role}: {m.content}" for m in request.messages)


def context_facts(app: Runtime) -> list[str]:
    """The lines of the untrusted context turn of the last prompt (memories, name), best first."""
    from core.prompt import CONTEXT_INTRO

    messages = app.generator.requests[-1].messages
    if len(messages) < 2 or not messages[1].content.startswith(CONTEXT_INTRO):
        return []
    return [line.removeprefix("- ") for line in messages[1].content.splitlines()[1:]]


def system_prompt(app: Runtime) -> str:
    return app.generator.requests[-1].messages[0].content


def rows_naming(db: Path, needles: Sequence[str]) -> dict[str, list[tuple]]:
    """Every row of every table with a text or blob cell that contains one of ``needles``."""
    found: dict[str, list[tuple]] = {}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                cells = [c.decode("utf-8", "replace") if isinstance(c, bytes) else c for c in row]
                if any(isinstance(c, str) and any(n in c for n in needles) for c in cells):
                    found.setdefault(table, []).append(row)
    return found


def table_names(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]


class GatedGenerator(ScriptedGenerator):
    """Replies at once, except to a message containing ``gate_on``: that reply streams
    its first word, then waits for ``gate`` (a reply in flight, for forget tests)."""

    def __init__(self, gate_on: str = "slow") -> None:
        super().__init__(["Sure thing."])
        self.gate_on = gate_on
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if self.gate_on not in request.messages[-1].content:
            async for chunk in super().stream(request):
                yield chunk
            return
        self.requests.append(request)
        yield Chunk("Partial ")
        self.started.set()
        await self.gate.wait()
        yield Chunk("answer.", FinishReason.STOP)
