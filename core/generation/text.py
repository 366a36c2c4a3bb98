"""Text helpers shared by the backends: stop strings over a stream, approximate token counts."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from core.events import ChatMessage


class StopFilter:
    """Cuts a streamed reply before the first stop string, even one split across chunks.

    Text that could still become the start of a stop string is held back until the next
    piece decides it, so a caller never shows (then has to retract) part of a stop string.
    """

    def __init__(self, stops: Iterable[str] = ()) -> None:
        self.stops = tuple(dict.fromkeys(s for s in stops if s))
        self.hit: str | None = None
        self._held = ""

    def feed(self, text: str) -> str:
        """Return the part of ``text`` that is safe to emit; after a hit, always ''."""
        if self.hit is not None:
            return ""
        buf = self._held + text
        first, hit = len(buf), None
        for stop in self.stops:
            at = buf.find(stop)
            if at != -1 and at < first:
                first, hit = at, stop
        if hit is not None:
            self.hit, self._held = hit, ""
            return buf[:first]
        keep = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buf)), keep, -1):
                if buf.endswith(stop[:k]):
                    keep = k
                    break
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """The held-back tail, when the stream ended without completing a stop string."""
        held, self._held = self._held, ""
        return "" if self.hit is not None else held


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def approx_tokens(text: str) -> int:
    """A deliberately generous token estimate for when no tokenizer is at hand.

    Subword tokenizers spend about one token per 4 ASCII characters of English, but about
    one per character (often more) for CJK and other non-Latin scripts; counting those
    characters one each keeps history trimming on the safe side for Chinese users.
    """
    others = _NON_ASCII.findall(text)  # per character only where it matters: a prompt is counted every turn
    wide = sum(1 for ch in others if not unicodedata.category(ch).startswith("M"))  # marks ride on the previous
    return wide + -(-(len(text) - len(others)) // 4)


MESSAGE_OVERHEAD = 4  # role marker and separators of one chat turn, typical of chat templates


def approx_message_tokens(messages: Sequence[ChatMessage]) -> int:
    """:func:`approx_tokens` for a chat, plus a per-turn allowance and the reply marker."""
    return sum(approx_tokens(m.content) + MESSAGE_OVERHEAD for m in messages) + MESSAGE_OVERHEAD
