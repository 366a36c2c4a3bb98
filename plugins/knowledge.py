"""Knowledge base (customer support): answers grounded in a folder of Markdown/text files.

    [plugins.knowledge]
    folder = "support_kb"     # *.md, *.markdown, *.txt, searched recursively

Documents are cut into passages (by heading, then paragraph), embedded with the bot's
Embedder and kept in memory. For each chat message the most similar passages go into
the prompt as reference text, and the reply ends with the sources of the passages that
reached the prompt (the chat service appends them; a passage the token budget dropped
is not cited).
``/kb search QUERY`` shows the matching passages; ``/admin kb reload`` re-reads the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.errors import CommandUsageError, NotFound
from core.personas import Persona
from core.plugins import N_, ArgSpec, Plugin, PluginContext, PromptSection, Turn, _
from core.prompt import passage_section

SUFFIXES = (".md", ".markdown", ".txt")
EMBED_BATCH = 64
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


class KnowledgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: str  # relative to the bot file
    top_k: int = Field(3, ge=1, le=20)
    min_score: float = Field(0.35, ge=-1.0, le=1.0)  # cosine similarity a passage needs to be used
    passage_chars: int = Field(900, ge=100, le=8000)
    cite: bool = True


@dataclass(frozen=True, slots=True)
class Passage:
    source: str  # file path relative to the folder
    heading: str
    text: str

    @property
    def citation(self) -> str:
        return f"{self.source} › {self.heading}" if self.heading else self.source


@dataclass
class Index:
    passages: list[Passage]
    vectors: np.ndarray  # (n, dimension), rows L2-normalised
    skipped: list[str]


plugin = Plugin("knowledge", description="Answers from a folder of documents, with sources", config=KnowledgeConfig)


def _config(ctx: PluginContext) -> KnowledgeConfig:
    assert isinstance(ctx.config, KnowledgeConfig)
    return ctx.config


def split_passages(text: str, source: str, limit: int) -> list[Passage]:
    """Sections by Markdown heading, then paragraphs packed up to ``limit`` characters."""
    passages: list[Passage] = []
    heading, lines = "", []

    def flush() -> None:
        body = "\n".join(lines).strip()
        if not body:
            return
        chunk = ""
        for paragraph in re.split(r"\n\s*\n", body):
            paragraph = paragraph.strip()
            while len(paragraph) > limit:  # one huge paragraph: cut at the limit
                if chunk:
                    passages.append(Passage(source, heading, chunk))
                    chunk = ""
                passages.append(Passage(source, heading, paragraph[:limit]))
                paragraph = paragraph[limit:].strip()
            if chunk and len(chunk) + 2 + len(paragraph) > limit:
                passages.append(Passage(source, heading, chunk))
                chunk = ""
            chunk = f"{chunk}\n\n{paragraph}" if chunk else paragraph
        if chunk:
            passages.append(Passage(source, heading, chunk))

    for line in text.splitlines():
        found = _HEADING.match(line)
        if found:
            flush()
            heading, lines = found.group(2), []
        else:
            lines.append(line)
    flush()
    return passages


def read_folder(folder: Path, limit: int) -> tuple[list[Passage], list[str]]:
    """Passages of every document; empty, binary or non-UTF-8 files are skipped and named."""
    if not folder.is_dir():
        raise FileNotFoundError(f"knowledge folder {folder} does not exist")
    passages, skipped = [], []
    for file in sorted(path for path in folder.rglob("*") if path.suffix.lower() in SUFFIXES and path.is_file()):
        source = file.relative_to(folder).as_posix()
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            skipped.append(f"{source} (not UTF-8)")  # i18n: as is (a file's state, beside its name)
            continue
        except OSError as exc:
            skipped.append(f"{source} ({exc.strerror or type(exc).__name__})")
            continue
        if "\x00" in text:
            skipped.append(f"{source} (binary)")
            continue
        found = split_passages(text, source, limit)
        if not found:
            skipped.append(f"{source} (empty)")
        passages += found
    return passages, skipped


async def build_index(ctx: PluginContext) -> Index:
    config = _config(ctx)
    embedder = await ctx.require_embedder()
    passages, skipped = read_folder(ctx.path(config.folder), config.passage_chars)
    if not passages:
        raise FileNotFoundError(f"no documents ({', '.join(SUFFIXES)}) in {ctx.path(config.folder)}")
    vectors = []
    for start in range(0, len(passages), EMBED_BATCH):
        batch = passages[start : start + EMBED_BATCH]
        vectors.append(await embedder.embed([f"{p.heading}\n{p.text}" if p.heading else p.text for p in batch]))
    for name in skipped:
        ctx.log.warning("knowledge: skipped %s", name)
    return Index(passages, np.concatenate(vectors).astype(np.float32), skipped)


async def search(ctx: PluginContext, query: str, top_k: int, min_score: float) -> list[tuple[float, Passage]]:
    index: Index = ctx.state["index"]
    vector = (await (await ctx.require_embedder()).embed([query]))[0]
    scores = index.vectors @ vector
    best = np.argsort(-scores)[:top_k]
    return [(float(scores[i]), index.passages[i]) for i in best if scores[i] >= min_score]


@plugin.on_setup
async def load(ctx: PluginContext) -> None:
    index = await build_index(ctx)
    ctx.state["index"] = index
    ctx.log.info("knowledge: %d passages from %s", len(index.passages), ctx.path(_config(ctx).folder))


@plugin.prompt
async def reference(turn: Turn, persona: Persona) -> list[PromptSection]:
    """The best passages for the message. Each names its source, so the chat service
    cites exactly the passages that survive the token budget (none when ``cite`` is off)."""
    config = _config(turn.plugin)
    found = await search(turn.plugin, turn.text, config.top_k, config.min_score)
    # Operator documents, yet kept untrusted: they only inform, and the budget may drop them.
    sections = [passage_section(passage.citation, passage.text, priority=round(score * 100)) for score, passage in found]
    if config.cite:
        return sections
    return [PromptSection(s.text, priority=s.priority, kind=s.kind) for s in sections]


@plugin.command("kb", N_("Search the help articles"), args=(
    ArgSpec("action", N_("search"), required=True, choices=("search",)),
    ArgSpec("query", N_("what to look for"), required=True, rest=True),
))
async def kb_search(turn: Turn) -> str:
    query = turn.args[1].strip()
    if not query:
        raise CommandUsageError("empty query", user_message=_("Usage: /kb search QUERY"))
    found = await search(turn.plugin, query, 5, _config(turn.plugin).min_score)
    if not found:
        return turn.t("Nothing in the help articles matches “{query}”.", query=query)
    lines = [turn.t("Help articles for “{query}”:", query=query)]
    for score, passage in found:
        snippet = " ".join(passage.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:159] + "…"
        lines.append(f"• {passage.citation} ({score:.2f}): {snippet}")
    return "\n".join(lines)


@plugin.command("kb", N_("Re-read the knowledge folder"), admin=True, args=(
    ArgSpec("action", N_("reload"), required=True, choices=("reload",)),
))
async def kb_reload(turn: Turn) -> str:
    try:
        index = await build_index(turn.plugin)
    except FileNotFoundError as exc:
        raise NotFound(str(exc), user_message=_("Reload failed: {error}. The articles loaded before stay in use.", error=str(exc))) from None
    turn.plugin.state["index"] = index
    skipped = " " + turn.t("Skipped: {files}.", files=", ".join(index.skipped)) if index.skipped else ""
    files = len({passage.source for passage in index.passages})
    return turn.t("Reloaded the knowledge base: {files} documents, {passages} passages.", files=files, passages=len(index.passages)) + skipped


@plugin.tool("knowledge_search", "Search the help articles; returns passages with their sources (cite them).")
async def knowledge_tool(turn: Turn, query: str, limit: int = 3) -> list[dict[str, object]]:
    found = await search(turn.plugin, query, max(1, min(limit, 8)), _config(turn.plugin).min_score)
    return [{"source": passage.citation, "score": round(score, 3), "text": passage.text} for score, passage in found]
