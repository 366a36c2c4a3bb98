"""Text rules shared by every platform: input normalisation and message splitting.

The normalisation is documented because the store keeps its result: what a user
sent, minus what can only do harm (lone surrogates, control and invisible
characters, runs of blank lines), in Unicode NFC, cut to the configured length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Invisible characters with no legitimate use in chat text. ZWJ (U+200D) and ZWNJ
# (U+200C) stay: emoji sequences and Persian/Indic scripts need them.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad\u180e]")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")


def _strip_controls(text: str) -> str:
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    text: str
    truncated: bool  # the input was longer than the limit and was cut


def normalize_user_text(text: str, max_chars: int) -> NormalizedText:
    """Apply the documented input normalisation; never raises on any ``str``."""
    text = _LONE_SURROGATE.sub("\ufffd", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _strip_controls(text)
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _BLANK_LINES.sub("\n\n", text).strip()
    if len(text) > max_chars:
        return NormalizedText(text[:max_chars].rstrip(), True)
    return NormalizedText(text, False)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: how Telegram counts its 4096 limit."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


Measure = Callable[[str], int]

_BOUNDARIES = ("\n\n", "\n", ". ", "! ", "? ", "。", "！", "？", "; ", "；", ", ", "，", " ")
FENCE = "```"
_FENCE_LANGUAGE = re.compile(r"[\w+#.-]{0,20}(?=\n)|")  # a language tag, else nothing


def _longest_fitting_prefix(text: str, limit: int, measure: Measure) -> int:
    """Largest n with measure(text[:n]) <= limit (measure grows with n)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _inside_fence(text: str, position: int) -> bool:
    return text.count(FENCE, 0, position) % 2 == 1


def _best_cut(text: str, limit: int, measure: Measure, fences: bool) -> int:
    fitting = _longest_fitting_prefix(text, limit, measure)
    window = text[:fitting]
    floor = fitting // 3  # do not produce tiny parts when a boundary is far back
    # With fences, first look for a boundary outside code blocks, then anywhere.
    for outside_only in (True, False) if fences else (False,):
        for boundary in _BOUNDARIES:
            search_end = len(window)
            while True:
                index = window.rfind(boundary, 0, search_end)
                cut = index + len(boundary)
                if index < 0 or cut <= floor:
                    break
                if not (outside_only and _inside_fence(text, cut)):
                    return cut
                search_end = index
    return max(fitting, 1)


def split_text(text: str, limit: int, measure: Measure = len, *, fences: bool = False) -> list[str]:
    """Split ``text`` into parts each at most ``limit`` long in ``measure`` units.

    Parts end on paragraph, line, sentence or word boundaries when one is in reach.
    Without ``fences``, ``"".join(parts) == text`` exactly. With ``fences`` (Discord
    markdown), a code block that must be cut is closed at the end of one part and
    reopened at the start of the next, so no part breaks the block's formatting;
    removing those added fence lines gives back the text.
    """
    if limit < 16:
        raise ValueError("limit too small to split into readable parts")
    parts: list[str] = []
    rest = text
    reopen = ""
    while measure(reopen + rest) > limit:
        budget = limit - (len(FENCE) + 1 if fences else 0) - measure(reopen)
        cut = _best_cut(rest, budget, measure, fences)
        head = reopen + rest[:cut]
        rest = rest[cut:]
        reopen = ""
        if fences and _inside_fence(head, len(head)):
            opening = head[head.rfind(FENCE) + len(FENCE) :]
            language = _FENCE_LANGUAGE.match(opening).group(0) if "\n" in opening else ""
            head += "\n" + FENCE if not head.endswith("\n") else FENCE
            reopen = FENCE + language + "\n"
        parts.append(head)
    if rest or reopen or not parts:
        parts.append(reopen + rest)
    return parts
