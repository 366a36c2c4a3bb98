"""Dialogue corpus preparation: collect, clean, scrub PII, de-duplicate, split.

A conversation is a dict ``{"id", "source", "turns": [{"role", "text"}, ...]}``;
roles alternate between ``user`` and ``assistant`` after cleaning (consecutive turns
of one role are merged), so the chat template renders every conversation the same way.
Generation targets are never stop-word stripped; ``features`` (optional) are.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.ports import Store

ROLES = ("system", "user", "assistant")
SPLITS = ("train", "valid", "test")

# --- PII --------------------------------------------------------------------------
# Order matters: URLs and emails before handles (``@`` inside them), phones before
# generic digit runs.
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"']+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|gg|me|ly|co|de|cn|ru|uk|jp|fr|info|edu|gov)(?:/[^\s<>\"']*)?", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?"
    r"(?:\(\d{1,4}\)[\s.-]?\d{2,4}(?:[\s.-]\d{2,4}){1,3}|\d{2,4}(?:[\s.-]\d{2,4}){2,4}|\d{7,15})(?!\w)"
)
_HANDLE = re.compile(r"(?<![\w<])@\w{2,}")
_LONG_DIGITS = re.compile(r"\d{6,}")
_DISCORD_MENTION = re.compile(r"<@[!&]?\d+>")

PLACEHOLDERS = ("<email>", "<phone>", "<url>", "<user>", "<number>")


def _phone(m: re.Match[str]) -> str:
    """Digit groups are a phone number only with 7+ digits ("10 20 30" is a score)."""
    return "<phone>" if sum(ch.isdigit() for ch in m.group()) >= 7 else m.group()


def scrub_pii(text: str) -> str:
    """Replace emails, URLs, phone numbers, @handles and long digit runs by placeholders."""
    text = _DISCORD_MENTION.sub("<user>", text)
    text = _EMAIL.sub("<email>", text)
    text = _URL.sub("<url>", text)
    text = _PHONE.sub(_phone, text)
    text = _HANDLE.sub("<user>", text)
    return _LONG_DIGITS.sub("<number>", text)


# --- normalisation and noise ------------------------------------------------------
_SPACES = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_RUNS = re.compile(r"(\D)\1{3,}")  # a non-digit repeated 4+ times ("sooooo", "!!!!!!")
_SPAM = re.compile(r"(.{1,3}?)\1{5,}", re.DOTALL)  # a 1-3 char unit repeated 6+ times, whole turn
_URL_ONLY = re.compile(rf"(?:\s*(?:{_URL.pattern})\s*)+", re.IGNORECASE)


def normalize(text: str) -> str:
    """NFKC, drop control/format characters except newlines, tidy whitespace."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch)[0] != "C")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def squeeze_runs(text: str) -> str:
    """Shorten runs of one non-digit character to three ("sooooo" -> "sooo"); digits are data."""
    return _RUNS.sub(lambda m: m.group(1) * 3, text)


def _is_logogram(ch: str) -> bool:
    """CJK ideographs, kana and Hangul carry a whole word in one character."""
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def noise_reason(text: str) -> str | None:
    """Why a normalised turn is noise (``empty``, ``one_char``, ``url_only``, ``spam``), or None."""
    compact = "".join(text.split())
    if not compact:
        return "empty"
    if len(compact) == 1 and not _is_logogram(compact):
        return "one_char"
    if _URL_ONLY.fullmatch(text):
        return "url_only"
    if _SPAM.fullmatch(compact.lower()):
        return "spam"
    return None


# --- stop words (features for retrieval only) -------------------------------------
_ZH_STOP = frozenset("的 了 是 在 和 就 也 都 而 及 与 着 或 吗 呢 吧 啊 呀 哦 嗯 这 那 之 把 被 让 给 对 从".split())
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+(?:'[^\W_]+)?|<\w+>")


def words(text: str) -> list[str]:
    """Language-neutral word split: CJK characters one by one, other scripts by letters/digits."""
    return _WORD.findall(text.lower())


def strip_stopwords(text: str) -> str:
    """Drop English and Chinese function words; for retrieval features, never for targets."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return " ".join(w for w in words(text) if w not in ENGLISH_STOP_WORDS and w not in _ZH_STOP)


# --- cleaning a conversation -------------------------------------------------------
@dataclass
class PrepareStats:
    conversations: int = 0
    turns: int = 0
    tokens: int = 0  # words as counted by :func:`words` (language-neutral, pre-BPE)
    dropped: Counter = field(default_factory=Counter)
    splits: dict[str, int] = field(default_factory=dict)
    sources: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "turns": self.turns,
            "tokens": self.tokens,
            "tokens_unit": "words (CJK characters count one each)",
            "dropped": dict(sorted(self.dropped.items())),
            "splits": self.splits,
            "sources": dict(self.sources),
        }


def clean_conversation(
    conv_id: str, source: str, raw_turns: Iterable[tuple[str, str]], dropped: Counter
) -> dict[str, Any] | None:
    """Normalise, denoise and scrub ``(role, text)`` utterances; merge same-role neighbours.

    Returns None (and counts why) when fewer than two turns survive.
    """
    turns: list[dict[str, str]] = []
    for role, text in raw_turns:
        if role not in ROLES:
            dropped["bad_role"] += 1
            continue
        text = normalize(text)
        reason = noise_reason(text)
        if reason:
            dropped[reason] += 1
            continue
        text = scrub_pii(squeeze_runs(text))
        if turns and turns[-1]["role"] == role:
            if turns[-1]["text"].split("\n")[-1] == text:
                dropped["duplicate_turn"] += 1
            else:
                turns[-1]["text"] += "\n" + text
            continue
        turns.append({"role": role, "text": text})
    if sum(t["role"] != "system" for t in turns) < 2:
        dropped["too_short"] += 1
        return None
    return {"id": conv_id, "source": source, "turns": turns}


# --- sources -----------------------------------------------------------------------
RawConversation = tuple[str, str, list[tuple[str, str]]]  # (id, source, [(role, text)])


def chitchat_conversations(path: str | Path | None = None) -> Iterator[RawConversation]:
    """The chitchat-dataset corpus; the first speaker is ``user``, the other ``assistant``."""
    if path is None:
        import chitchat_dataset

        path = Path(chitchat_dataset.__file__).with_name("dataset.json")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    for conv_id, conv in data.items():
        speakers: list[str] = []
        turns: list[tuple[str, str]] = []
        for message in conv.get("messages", []):
            for utt in message:
                sender = utt.get("sender", "")
                if sender not in speakers:
                    speakers.append(sender)
                role = "user" if speakers.index(sender) % 2 == 0 else "assistant"
                turns.append((role, str(utt.get("text", ""))))
        yield f"chitchat:{conv_id}", "chitchat", turns


async def store_conversations(store: Store, flag: str = "training") -> list[RawConversation]:
    """Consented chat logs from an open Store (the only door to user data for training)."""
    out = []
    for messages in await store.consented_conversations(flag=flag):
        if messages:
            out.append((f"store:{messages[0].conversation_id}", "store", [(m.role, m.text) for m in messages]))
    return out


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Conversations from a JSONL file, and how many lines were malformed or empty.

    Accepts ``{"turns": [{"role", "text"}]}`` (our format) and
    ``{"messages": [{"role", "content"}]}`` (OpenAI-style exports).
    """
    records: list[dict[str, Any]] = []
    bad = 0
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        for lineno, line in enumerate(fh, 1):
            try:
                obj = json.loads(line)
                turns = obj.get("turns")
                if turns is None:
                    turns = [{"role": m["role"], "text": m["content"]} for m in obj["messages"]]
                turns = [{"role": str(t["role"]), "text": str(t["text"])} for t in turns]
                if not turns:
                    raise ValueError("no turns")
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1
                continue
            record = {"id": str(obj.get("id", f"{Path(path).name}:{lineno}")), "source": str(obj.get("source", "jsonl")), "turns": turns}
            if obj.get("loss_on") in ("all", "assistant"):  # grounded data trains on replies only
                record["loss_on"] = obj["loss_on"]
            for key in ("lang", "kind"):
                if isinstance(obj.get(key), str):
                    record[key] = obj[key]
            records.append(record)
    return records, bad


def split_conversations(
    convs: list[dict[str, Any]], valid: float = 0.05, test: float = 0.05, seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """Seeded split by whole conversation, so no turn of a test dialogue is trained on."""
    n = len(convs)
    if not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
        raise ConfigError("valid and test fractions must be in (0, 1) and sum below 1")
    n_valid, n_test = max(1, round(n * valid)), max(1, round(n * test))
    if n - n_valid - n_test < 1:
        raise ConfigError(f"dataset too small to split: {n} conversation(s) after cleaning, need at least 3")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    picked = [convs[i] for i in order]
    return {"test": picked[:n_test], "valid": picked[n_test : n_test + n_valid], "train": picked[n_test + n_valid :]}


def prepare(
    sources: Iterable[RawConversation],
    out_dir: str | Path,
    *,
    extra: Iterable[dict[str, Any]] = (),
    malformed_lines: int = 0,
    valid: float = 0.05,
    test: float = 0.05,
    seed: int = 0,
    features: bool = False,
    overwrite: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
) -> PrepareStats:
    """Clean every conversation, drop duplicates, split, write ``{split}.jsonl`` + ``stats.json``."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"output folder {out} exists and is not empty (use --overwrite)")
    stats = PrepareStats()
    stats.dropped["malformed_line"] += malformed_lines
    seen: set[tuple[tuple[str, str], ...]] = set()
    kept: list[dict[str, Any]] = []

    def raw_items() -> Iterator[RawConversation]:
        yield from sources
        for rec in extra:
            yield rec["id"], rec["source"], [(t["role"], t["text"]) for t in rec["turns"]]

    for conv_id, source, raw in progress(raw_items()):
        conv = clean_conversation(conv_id, source, raw, stats.dropped)
        if conv is None:
            continue
        fingerprint = tuple((t["role"], t["text"].casefold()) for t in conv["turns"])
        if fingerprint in seen:
            stats.dropped["duplicate_conversation"] += 1
            continue
        seen.add(fingerprint)
        if features:
            conv["features"] = [strip_stopwords(t["text"]) for t in conv["turns"]]
        kept.append(conv)
        stats.sources[source] += 1
        stats.turns += len(conv["turns"])
        stats.tokens += sum(len(words(t["text"])) for t in conv["turns"])
    stats.conversations = len(kept)
    splits = split_conversations(kept, valid, test, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for conv in splits[name]:
                fh.write(json.dumps(conv, ensure_ascii=False) + "\n")
        stats.splits[name] = len(splits[name])
    (out / "stats.json").write_text(json.dumps(stats.as_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


def load_split(data_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """One split written by :func:`prepare` (malformed lines skipped)."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} not found; run `personabot data prepare` first")
    return read_jsonl(path)[0]
