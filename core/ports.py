"""The ports of the core: one Protocol each. Backends and adapters implement them.

The core depends on these shapes only, so a test can plug in a scripted Generator,
a temp-file Store or a recording Outbox, and production can plug in transformers,
an OpenAI-compatible server, SQLite, Telegram or Discord.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from core.events import (
    ChatMessage,
    Chunk,
    ConversationKey,
    GenerationRequest,
    Reply,
    SentMessage,
)
from core.records import (
    Activity,
    AuditEntry,
    Conversation,
    ConversationSummary,
    Memory,
    Profile,
    ScheduledJob,
    StoredMessage,
    TurnContext,
    TurnStart,
    UserRecord,
)


@runtime_checkable
class Generator(Protocol):
    """Streams a reply for a chat. Implementations run model work off the event loop."""

    name: str
    context_window: int  # tokens the model can attend to (prompt + reply)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens the rendered prompt of ``messages`` takes (used to trim history)."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Yield reply pieces; the last chunk has a ``finish_reason``. Raises GenerationError."""
        ...

    async def health(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Embedder(Protocol):
    dimension: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dimension), rows L2-normalised."""
        ...


@runtime_checkable
class Outbox(Protocol):
    """How the core answers on one platform. Adapters give one per incoming event."""

    max_message_length: int  # in the platform's own units (see ``measure``)
    markdown_fences: bool  # split long replies without breaking ``` code blocks (Discord)

    def measure(self, text: str) -> int:
        """Length of ``text`` in the platform's units (Telegram: UTF-16 code units)."""
        ...

    def edit_interval(self) -> float | None:
        """Seconds between edits while streaming, or None to send only the finished reply."""
        ...

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage: ...

    async def edit(self, sent: SentMessage, text: str) -> None: ...

    async def typing(self, key: ConversationKey) -> None:
        """Show 'typing…'; the core renews it while generating."""
        ...

    async def aclose(self) -> None:
        """Deliver whatever is still buffered (Telegram drafts) and release the outbox."""
        ...


@runtime_checkable
class Store(Protocol):
    """Persistence for everything the bot keeps. Every method is atomic.

    The contract suite in tests/core/store_contract.py defines the behaviour; any
    implementation must pass it.
    """

    async def __aenter__(self) -> "Store": ...

    async def __aexit__(self, *exc: object) -> None: ...

    def observe_latency(self, observer: Callable[[str, float], None] | None) -> None:
        """After every operation call ``observer(operation name, seconds)`` (the metrics); None: stop."""
        ...

    # users -------------------------------------------------------------------------
    async def touch_user(self, user_id: str, display_name: str = "") -> UserRecord:
        """Create or update a user; bumps last_seen and message_count."""
        ...

    async def get_user(self, user_id: str) -> UserRecord | None: ...

    async def set_banned(self, user_id: str, banned: bool) -> None: ...

    async def is_banned(self, user_id: str) -> bool: ...

    # profiles ----------------------------------------------------------------------
    async def get_profile(self, user_id: str) -> Profile: ...

    async def save_profile(self, profile: Profile) -> None: ...

    # settings (per chat / per server persona and other scoped options) -------------
    async def get_setting(self, scope: str, name: str) -> str | None: ...

    async def set_setting(self, scope: str, name: str, value: str | None) -> None:
        """``value=None`` deletes the setting."""
        ...

    # personas ------------------------------------------------------------------------
    async def upsert_persona(self, name: str, definition: dict[str, Any]) -> None: ...

    async def get_persona(self, name: str) -> dict[str, Any] | None: ...

    async def list_personas(self) -> list[str]: ...

    # conversations and messages ------------------------------------------------------
    async def active_conversation(self, key: ConversationKey) -> Conversation:
        """The open conversation for ``key``; created on first use."""
        ...

    async def reset_conversation(self, key: ConversationKey) -> Conversation:
        """Close the open conversation (history kept) and start a new one."""
        ...

    async def set_conversation_persona(self, conversation_id: int, persona: str | None) -> None: ...

    async def record_event(self, event_id: str) -> bool:
        """Remember an update id; False if it was already seen (duplicate delivery)."""
        ...

    async def add_user_message(
        self, conversation_id: int, user_id: str, text: str, event_id: str | None = None
    ) -> StoredMessage: ...

    async def add_reply(self, user_message_id: int, text: str) -> StoredMessage:
        """Store the bot's turn and mark the user turn answered, in one transaction."""
        ...

    async def history(self, conversation_id: int, limit: int = 50) -> list[StoredMessage]:
        """The last ``limit`` messages, oldest first."""
        ...

    async def begin_turn(
        self, key: ConversationKey, user_id: str, display_name: str, text: str, event_id: str | None = None
    ) -> TurnStart:
        """``touch_user``, ``active_conversation`` and ``add_user_message`` as one write."""
        ...

    async def turn_context(
        self, conversation_id: int, user_id: str, setting: str, scopes: Sequence[str], history_limit: int
    ) -> TurnContext:
        """The user's profile, the setting ``setting`` in each of ``scopes`` where set, and
        the last ``history_limit`` messages, in one read (what ``get_profile``,
        ``get_setting`` and ``history`` return)."""
        ...

    async def unanswered(self, platform: str, since: float = 0.0) -> list[tuple[StoredMessage, str]]:
        """User turns stored but never answered, with their conversation key (crash recovery)."""
        ...

    async def turn_by_event(self, event_id: str) -> tuple[StoredMessage, StoredMessage | None] | None:
        """The user turn stored for a platform event and the bot's reply to it; None if never stored.

        Crash recovery asks it when an event is delivered again (core.recovery).
        """
        ...

    async def consented_conversations(self, flag: str = "training") -> list[list[StoredMessage]]:
        """Conversations (oldest message first) whose every user author has consent ``flag``."""
        ...

    async def delete_messages_before(self, timestamp: float) -> int:
        """Retention: delete messages older than ``timestamp`` (with the replies to them); returns how many."""
        ...

    # memories ----------------------------------------------------------------------
    async def add_memory(
        self, user_id: str, subject: str, text: str, embedding: Sequence[float] | None, scope: str,
        source_message_id: int | None = None,
    ) -> Memory:
        """Store a fact (learned from the user turn ``source_message_id``); an older live
        memory of the same user and subject is superseded. Ids are never reused."""
        ...

    async def memories(self, user_id: str, include_superseded: bool = False) -> list[Memory]: ...

    async def delete_memory(self, user_id: str, memory_id: int) -> bool: ...

    # audit -------------------------------------------------------------------------
    async def audit(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", detail: dict[str, Any] | None = None
    ) -> None: ...

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]: ...

    # identities across platforms ----------------------------------------------------
    async def link_identities(self, a: str, b: str) -> list[str]:
        """Declare two qualified ids the same person; returns the merged group, sorted."""
        ...

    async def unlink_identity(self, user_id: str) -> bool:
        """Take ``user_id`` out of its group; False if it was not linked."""
        ...

    async def linked_identities(self, user_id: str) -> list[str]:
        """The whole group of ``user_id``, itself included, sorted (``[user_id]`` if unlinked)."""
        ...

    async def banned_identity(self, user_id: str) -> str | None:
        """The first identity of the group of ``user_id`` (sorted) that is banned, or was
        banned and then forgotten; None if none is. One read: every message asks it."""
        ...

    # privacy and stats -------------------------------------------------------------
    async def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything stored about a user, as JSON-serialisable data."""
        ...

    async def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything about a user; returns counts of deleted rows per kind."""
        ...

    async def stats(self) -> dict[str, int]: ...

    # operator console: browse, search, page ---------------------------------------------
    async def find_users(self, query: str = "", *, limit: int = 50, offset: int = 0) -> list[UserRecord]:
        """Users whose id or display name contains ``query`` (ASCII case ignored), most
        recently seen first; ``""`` lists everyone."""
        ...

    async def find_conversations(
        self,
        *,
        platform: str = "",
        chat: str = "",
        user: str = "",
        text: str = "",
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[ConversationSummary]:
        """Newest first (by id, below ``before_id``), matching every filter given:
        ``platform`` exactly, ``chat`` inside the conversation key, ``user`` the author of a
        turn, ``text`` inside a turn (ASCII case ignored; ``%`` and ``_`` are literal)."""
        ...

    async def conversation_summary(self, conversation_id: int) -> ConversationSummary | None: ...

    async def conversation_turns(
        self, conversation_id: int, *, after_id: int = 0, limit: int = 100
    ) -> list[StoredMessage]:
        """Up to ``limit`` turns with an id above ``after_id``, oldest first (one page)."""
        ...

    async def find_audit(
        self,
        *,
        actor: str = "",
        action: str = "",
        target: str = "",
        outcome: str = "",
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        """Newest first, matching every filter given: ``actor`` and ``outcome`` exactly,
        ``action`` as a prefix (``"moderation"`` finds every moderation action), ``target``
        inside the target."""
        ...

    async def activity(self, since: float, until: float, bucket_s: float = 60.0) -> Activity:
        """Turns per ``bucket_s`` from ``since`` to ``until``, active users and
        conversations, and the reply latencies of that window."""
        ...

    # shared by every process on the store: leases, limits, quotas -----------------------
    # Times are the caller's wall clock (``time.time()``), so processes agree on them.
    async def acquire_lease(self, name: str, owner: str, now: float, lease_s: float) -> bool:
        """Hold ``name`` until ``now + lease_s`` (a renewal when ``owner`` holds it);
        False while another owner's lease lasts. A dead holder's lease simply expires."""
        ...

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give ``name`` up; False if ``owner`` no longer held it."""
        ...

    async def take_token(self, key: str, rate: float, burst: int, now: float) -> float:
        """Take one token from bucket ``key`` (``rate`` per second, at most ``burst``):
        0.0 if taken, else the seconds until one is available (nothing taken)."""
        ...

    async def notice_due(self, key: str, now: float, window_s: float) -> bool:
        """True at most once per ``window_s``: whether to tell a user about limit ``key`` now."""
        ...

    async def use_quota(self, key: str, period: str, limit: int) -> bool:
        """Count one use of ``key`` in ``period`` (e.g. a UTC date); False, counting
        nothing, once ``limit`` uses were counted in that period."""
        ...

    async def quota_used(self, key: str, period: str) -> int: ...

    async def claim_bot_process(self) -> None:
        """Called once by a process that serves chats (``personabot run``). SQLite serves
        one such process per file and refuses a second with StorageError naming
        PostgreSQL; PostgreSQL lets any number share the database. Tools do not call it."""
        ...


@runtime_checkable
class PluginStore(Protocol):
    """What plugins keep (core/plugins): a JSON key-value namespace per plugin and scheduled jobs.

    A Store implements it too when it can host plugins (SQLiteStore does). ``user_id=""``
    is the plugin-wide namespace; rows with a user id belong to that user, so the
    Store's ``export_user`` and ``forget_user`` include them.
    """

    async def plugin_get(self, plugin: str, key: str, user_id: str = "") -> Any | None: ...

    async def plugin_set(self, plugin: str, key: str, value: Any, user_id: str = "") -> None:
        """``value=None`` deletes the key."""
        ...

    async def plugin_items(self, plugin: str, user_id: str = "", prefix: str = "") -> dict[str, Any]: ...

    async def plugin_forget_user(self, plugin: str, user_id: str) -> int:
        """Delete one user's rows of one plugin, jobs included; returns how many went."""
        ...

    async def add_job(
        self,
        plugin: str,
        name: str,
        run_at: float,
        *,
        every: float | None = None,
        key: ConversationKey | None = None,
        user_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> ScheduledJob: ...

    async def get_job(self, job_id: int) -> ScheduledJob | None: ...

    async def list_jobs(self, plugin: str, user_id: str | None = None, name: str | None = None) -> list[ScheduledJob]: ...

    async def due_jobs(
        self, now: float, plugins: Sequence[str], platforms: Sequence[str], limit: int = 100
    ) -> list[ScheduledJob]:
        """Jobs due at ``now`` of ``plugins`` without a chat or with one on ``platforms``, oldest first."""
        ...

    async def claim_jobs(
        self, now: float, plugins: Sequence[str], platforms: Sequence[str], *, owner: str, lease_s: float,
        limit: int = 100,
    ) -> list[ScheduledJob]:
        """Atomically claim the due jobs (as :meth:`due_jobs`) that no live claim holds,
        for ``lease_s`` seconds: one claimer gets each job. Rescheduling or deleting a
        job ends its claim; a claim whose holder died expires and the job is claimed again."""
        ...

    async def next_job_at(self, plugins: Sequence[str], platforms: Sequence[str]) -> float | None: ...

    async def reschedule_job(self, job_id: int, run_at: float, attempts: int = 0) -> bool: ...

    async def delete_job(self, job_id: int, plugin: str | None = None) -> bool: ...
