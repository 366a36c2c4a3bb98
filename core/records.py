"""Rows the Store returns: frozen dataclasses, independent of the database used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.events import ConversationKey


@dataclass(frozen=True, slots=True)
class UserRecord:
    qualified_id: str  # "telegram:123"
    display_name: str
    first_seen: float
    last_seen: float
    message_count: int
    banned: bool = False


@dataclass(frozen=True, slots=True)
class Profile:
    """Explicit preferences and consent flags of one user; ``interest`` is a float32 vector."""

    qualified_id: str
    preferences: dict[str, str] = field(default_factory=dict)  # name, language, length, tone, persona
    consent: dict[str, bool] = field(default_factory=dict)  # e.g. {"training": False, "memories_in_groups": False}
    interest: tuple[float, ...] | None = None
    interest_count: int = 0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    key: str  # ConversationKey.qualified
    persona: str | None
    started_at: float
    active: bool = True


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str  # "user" | "assistant"
    user_id: str | None  # qualified id of the author for user turns
    text: str
    created_at: float
    event_id: str | None = None
    answered: bool = False  # for user turns: a reply was stored


@dataclass(frozen=True, slots=True)
class Memory:
    id: int
    user_id: str
    subject: str  # normalised topic, e.g. "home", "name", "allergy"; newer supersedes older
    text: str
    embedding: tuple[float, ...] | None
    scope: str  # "private" (learned in a DM) or "group"
    created_at: float
    superseded_by: int | None = None
    source_message_id: int | None = None  # the user turn it was learned from (kept when retention drops the turn)


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What storing a user turn gives back: its conversation and the stored turn."""

    conversation: Conversation
    user_turn: StoredMessage


@dataclass(frozen=True, slots=True)
class TurnContext:
    """What a reply is built from, read in one round trip (``Store.turn_context``)."""

    profile: Profile
    settings: dict[str, str]  # scope -> value of the one setting asked for, where set
    history: tuple[StoredMessage, ...]  # oldest first


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str  # qualified id, or "system"
    action: str
    target: str
    outcome: str  # "ok" | "denied" | "error"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A plugin's scheduled call (reminder, check-in), stored so that it survives restarts."""

    id: int
    plugin: str
    name: str  # the job handler the plugin declared
    run_at: float  # unix time of the next run
    every: float | None  # seconds between runs of a repeating job
    key: ConversationKey | None  # where its messages go
    user_id: str | None  # the user it belongs to: exported and forgotten with them
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0  # failed runs since the last success
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A conversation as the operator console lists it: with its size and last activity."""

    conversation: Conversation
    platform: str
    message_count: int
    last_at: float | None  # time of the newest turn; None when it has none


@dataclass(frozen=True, slots=True)
class Activity:
    """Traffic between ``since`` and ``until`` (the console's dashboard)."""

    since: float
    until: float
    bucket_s: float
    messages: tuple[int, ...]  # stored turns (user and bot) per bucket, oldest bucket first
    active_users: int  # distinct authors of user turns
    active_conversations: int  # distinct conversations with a turn
    reply_seconds: tuple[float, ...]  # for each reply stored in the window: reply time - user turn time
