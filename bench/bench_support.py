"""Pieces the benchmark scripts share (they run as `python bench/NAME.py`)."""

from __future__ import annotations

from core.events import ConversationKey, Reply, SentMessage


def percentile(values: list[float], q: float) -> float:
    """The q-quantile by rank (q in [0, 1]); the largest value for q = 1."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class NullOutbox:
    """An Outbox that only counts what it sends: measures the framework, not a platform."""

    max_message_length = 4096
    markdown_fences = False

    def __init__(self) -> None:
        self.sent = 0

    def measure(self, text: str) -> int:
        return len(text)

    def edit_interval(self) -> float | None:
        return None

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        self.sent += 1
        return SentMessage(key, str(self.sent))

    async def edit(self, sent: SentMessage, text: str) -> None:
        return None

    async def typing(self, key: ConversationKey) -> None:
        return None
