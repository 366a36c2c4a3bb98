"""Fakes at the port boundaries, shared by every test folder."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from core.events import ConversationKey, Reply, SentMessage


@dataclass
class RecordingOutbox:
    """An Outbox that remembers everything, with configurable platform limits."""

    max_message_length: int = 4096
    interval: float | None = None
    markdown_fences: bool = False
    measure: Callable[[str], int] = len
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (action, message id, text)
    messages: dict[str, str] = field(default_factory=dict)  # message id -> current text
    typing_calls: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def edit_interval(self) -> float | None:
        return self.interval

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        message_id = str(next(self._ids))
        self.messages[message_id] = reply.text
        self.log.append(("send", message_id, reply.text))
        return SentMessage(key, message_id)

    async def edit(self, sent: SentMessage, text: str) -> None:
        assert sent.message_id in self.messages, "edit of a message never sent"
        self.messages[sent.message_id] = text
        self.log.append(("edit", sent.message_id, text))

    async def typing(self, key: ConversationKey) -> None:
        self.typing_calls += 1

    async def aclose(self) -> None:
        return None

    @property
    def texts(self) -> list[str]:
        """Current text of every message, in send order."""
        return list(self.messages.values())

    @property
    def last(self) -> str:
        return self.texts[-1]
