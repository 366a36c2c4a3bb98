"""Platform-neutral events and values. Adapters convert into these at the edge.

All are frozen dataclasses: an event is a fact that happened, handlers never mutate it.
Identities carry their platform (``telegram:123``), so one table can hold every user.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


def qualify(platform: str, local_id: str | int) -> str:
    """``qualify("telegram", 42) -> "telegram:42"``."""
    return f"{platform}:{local_id}"


def split_qualified(qualified: str) -> tuple[str, str]:
    """Inverse of :func:`qualify`; raises ValueError without a ``platform:`` prefix."""
    platform, sep, local_id = qualified.partition(":")
    if not sep or not platform or not local_id:
        raise ValueError(f"expected 'platform:id', got {qualified!r}")
    return platform, local_id


@dataclass(frozen=True, slots=True)
class UserRef:
    platform: str
    user_id: str

    @property
    def qualified(self) -> str:
        return qualify(self.platform, self.user_id)

    @classmethod
    def parse(cls, qualified: str) -> "UserRef":
        return cls(*split_qualified(qualified))

    def __str__(self) -> str:
        return self.qualified


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation happens: a DM, a group, a channel, or a thread/topic in one."""

    platform: str
    chat_id: str
    thread_id: str | None = None

    @property
    def qualified(self) -> str:
        base = qualify(self.platform, self.chat_id)
        return f"{base}/{self.thread_id}" if self.thread_id else base

    @property
    def chat_qualified(self) -> str:
        return qualify(self.platform, self.chat_id)

    def __str__(self) -> str:
        return self.qualified


class ChatKind(str, enum.Enum):
    PRIVATE = "private"  # DM: the bot answers every message
    GROUP = "group"  # group, supergroup, server channel
    CONSOLE = "console"


@dataclass(frozen=True, slots=True)
class CommandCall:
    """A parsed command: ``/persona tutor`` -> ``CommandCall("persona", ("tutor",))``.

    Sub-commands stay in ``args``: ``/admin ban telegram:1`` -> ("ban", "telegram:1").
    """

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One thing a user sent: chat text or a command."""

    event_id: str  # platform-unique id used for de-duplication, e.g. "telegram:update:991"
    key: ConversationKey
    user: UserRef
    text: str
    chat_kind: ChatKind = ChatKind.PRIVATE
    command: CommandCall | None = None
    message_id: str | None = None  # platform id of the user's message (reply target)
    user_display_name: str = ""
    addressed_to_bot: bool = True  # mentioned, a reply to the bot, DM, or a listed chat
    space_id: str | None = None  # the server (Discord guild) the chat belongs to, if any
    user_roles: tuple[str, ...] = ()  # platform role ids (Discord), for admin checks
    nsfw: bool = False  # the channel is marked NSFW (Discord)
    locale: str | None = None  # the platform's language hint (Telegram language_code, Discord locale)
    from_bot: bool = False  # sent by another bot ([access] bots lists those the adapters let through)
    images: tuple[ImageRef, ...] = ()  # photos / image attachments the adapter fetched
    media_notice: str = ""  # why an attachment was not taken (too large, not an image…)
    received_at: float = field(default_factory=time.time)


class FinishReason(str, enum.Enum):
    STOP = "stop"  # end of sequence token
    LENGTH = "length"  # max_new_tokens reached
    STOP_STRING = "stop_string"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ERROR = "error"
    TOOL_CALLS = "tool_calls"  # the model asks for tools (the last chunk carries them)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for; ``arguments`` is the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as a model sees it: name, description, JSON schema of its arguments (JSON text)."""

    name: str
    description: str
    parameters: str  # a JSON schema object, serialised (keeps the dataclass hashable)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image a user sent, by reference: the adapter fetched and checked it (core/media)."""

    url: str  # a data: URL with the bytes, or the platform's file URL when bytes are not kept
    mime_type: str = "image/jpeg"
    size: int = 0  # bytes
    ref: str = ""  # the platform's stable reference (``telegram:file:ID``), what the store keeps


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a streamed reply. The last chunk carries ``finish_reason``
    (and, when that is TOOL_CALLS, the calls)."""

    text: str
    finish_reason: FinishReason | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn that asked for tools
    tool_call_id: str = ""  # a "tool" turn: the call it answers
    images: tuple[ImageRef, ...] = ()  # a user turn with images (vision models)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    timeout_s: float = 60.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...]
    params: GenerationParams = GenerationParams()
    conversation_id: str = ""  # for cache reuse and fair queueing
    user_id: str = ""  # qualified user id, for fair queueing
    tenant: str = ""  # the bot asking, when several bots share one model (fair queueing across bots)
    tools: tuple[ToolSpec, ...] = ()  # offered to the model (backends without tool support ignore them)
    tool_choice: str = "auto"  # "none": tools stay described (history has calls) but must not be called


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a reply (e.g. the JSON of /export)."""

    filename: str
    data: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer to show the user (commands, notices, finished generations)."""

    text: str
    private: bool = False  # ephemeral on Discord, DM elsewhere: only the caller should see it
    reply_to: str | None = None  # platform message id to answer
    attachment: Attachment | None = None
    answer: bool = False  # the chat answer to ``reply_to``, not a notice: an adapter may make sending it idempotent


@dataclass(frozen=True, slots=True)
class SentMessage:
    """Handle to a message an Outbox sent, so it can be edited later."""

    key: ConversationKey
    message_id: str
