"""What both Store backends check and convert the same way: input values and rows.

Text. Neither SQLite's UTF-8 nor PostgreSQL can hold a lone UTF-16 surrogate
(``"\\ud800"``, produced by some clients and by slicing UTF-16 text). Such code points
are replaced by U+FFFD, and a surrogate pair written as two code points is joined into
its character. Nothing else is changed: no case folding, no NFC.

Rows. Both backends select the same columns in the same order (the ``*_COLS``
strings), so one converter per record serves both.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InputRejected
from core.events import ConversationKey
from core.records import AuditEntry, Conversation, Memory, Profile, ScheduledJob, StoredMessage, UserRecord

MEMORY_SCOPES = ("private", "group")
AUDIT_OUTCOMES = ("ok", "denied", "error")
FORGOTTEN = "[forgotten]"
MAX_VALUE_BYTES = 1_000_000  # a plugin value, as JSON
MAX_KEY_CHARS = 200  # plugin names, keys, job names

USER_COLS = "id, display_name, first_seen, last_seen, message_count, banned"
CONV_COLS = "id, key, persona, started_at, active"
MSG_COLS = "id, conversation_id, role, user_id, text, created_at, event_id, answered"
MEM_COLS = "id, user_id, subject, text, embedding, scope, created_at, superseded_by, source_message_id"
AUDIT_COLS = "id, at, actor, action, target, outcome, detail"
PROFILE_COLS = "preferences, consent, interest, interest_count, updated_at"
JOB_COLS = "id, plugin, name, run_at, every, platform, chat_id, thread_id, user_id, payload, attempts, created_at"

# What stats() counts, by name: the same SQL on both backends.
STATS_QUERIES = {
    "users": "SELECT count(*) FROM users",
    "banned_users": "SELECT count(*) FROM users WHERE banned",
    "conversations": "SELECT count(*) FROM conversations",
    "active_conversations": "SELECT count(*) FROM conversations WHERE active",
    "messages": "SELECT count(*) FROM messages",
    "unanswered": "SELECT count(*) FROM messages WHERE role = 'user' AND NOT answered",
    "memories": "SELECT count(*) FROM memories WHERE superseded_by IS NULL",
    "personas": "SELECT count(*) FROM personas",
    "settings": "SELECT count(*) FROM settings",
    "audit_entries": "SELECT count(*) FROM audit_log",
    "processed_events": "SELECT count(*) FROM processed_events",
    "linked_identities": "SELECT count(*) FROM identity_links",
}


# -- input --------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """Replace lone surrogates with U+FFFD (and join split pairs) so UTF-8 can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InputRejected(f"{what} must be a string, not {type(value).__name__}")
    return clean_text(value)


def json_text(value: object) -> str:
    """JSON for core columns; values that are not JSON data become their ``str()``."""
    return clean_text(json.dumps(value, ensure_ascii=False, default=str))


def persona_json(name: str, definition: object) -> str:
    try:
        return clean_text(json.dumps(definition, ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        raise InputRejected(f"persona {name!r}: definition is not JSON data: {exc}") from None


def vector(values: Sequence[float] | None, what: str) -> bytes | None:
    """A float vector as little-endian float32 bytes (a BLOB in SQLite, bytea in PostgreSQL)."""
    if values is None:
        return None
    try:
        array = np.asarray(values, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise InputRejected(f"{what} must be a sequence of numbers: {exc}") from None
    if array.ndim != 1 or not np.isfinite(array).all():
        raise InputRejected(f"{what} must be a flat vector of finite numbers")
    return array.tobytes()


def unvector(blob: bytes | None) -> tuple[float, ...] | None:
    return None if blob is None else tuple(np.frombuffer(blob, dtype="<f4").tolist())


def memory_scope(scope: object) -> str:
    if scope not in MEMORY_SCOPES:
        raise InputRejected(f"memory scope must be one of {MEMORY_SCOPES}, got {scope!r}")
    return str(scope)


def memory_subject(subject: object) -> str:
    """Stored case-folded with spaces collapsed; an empty subject never supersedes."""
    return " ".join(text(subject, "memory subject").split()).casefold()


def audit_outcome(outcome: object) -> str:
    if outcome not in AUDIT_OUTCOMES:
        raise InputRejected(f"audit outcome must be one of {AUDIT_OUTCOMES}, got {outcome!r}")
    return str(outcome)


def consent_word(flag: object) -> str:
    if not isinstance(flag, str) or not re.fullmatch(r"\w+", flag):
        raise InputRejected(f"consent flag must be a word, got {flag!r}")
    return flag


def profile_values(profile: Profile) -> tuple[str, str, str, bytes | None, int]:
    """(user id, preferences JSON, consent JSON, interest bytes, interest count), checked."""
    uid = text(profile.qualified_id, "user id")
    preferences = {text(k, "preference name"): text(v, f"preference {k!r}") for k, v in profile.preferences.items()}
    for flag, value in profile.consent.items():
        if not isinstance(value, bool):
            raise InputRejected(f"consent flag {flag!r} must be true or false")
    return (uid, json_text(preferences), json_text(profile.consent), vector(profile.interest, "interest vector"),
            int(profile.interest_count))


def conversation_key(key: ConversationKey) -> str:
    if not isinstance(key, ConversationKey):
        raise InputRejected(f"expected a ConversationKey, not {type(key).__name__}")
    return text(key.qualified, "conversation key")


def id_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


def in_json(user_id: str) -> str:
    """How ``user_id`` appears inside a JSON string (quotes and backslashes escaped)."""
    return json.dumps(user_id, ensure_ascii=False)[1:-1]


# -- naming a user inside text --------------------------------------------------------


@functools.lru_cache(maxsize=256)
def id_pattern(user_id: str) -> re.Pattern[str]:
    # "telegram:12" must match in "chat:telegram:12" and "telegram:12/7", not in "telegram:123".
    return re.compile(rf"(?<![\w-]){re.escape(user_id)}(?!\w)")


def mentions(value: object, user_id: str) -> bool:
    """``value`` names ``user_id`` as a whole identifier."""
    return isinstance(value, str) and bool(user_id) and id_pattern(user_id).search(value) is not None


def redact(value: object, user_id: str) -> object:
    """``value`` with every mention of ``user_id`` replaced by ``[forgotten]``."""
    return id_pattern(user_id).sub(FORGOTTEN, value) if isinstance(value, str) and user_id else value


# -- plugin values --------------------------------------------------------------------


def name(value: object, what: str, *, empty: bool = False) -> str:
    """A plugin, key, job or platform name: 1-200 characters of valid text."""
    if not isinstance(value, str):
        raise InputRejected(f"{what} must be a string, not {type(value).__name__}")
    if (not value and not empty) or len(value) > MAX_KEY_CHARS:
        raise InputRejected(f"{what} must be 1-{MAX_KEY_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputRejected(f"{what} holds a lone surrogate") from None
    return value


def dump(value: object, what: str) -> str:
    """Plugin JSON, ASCII-escaped: any Python string round-trips exactly, lone surrogates included."""
    try:
        body = json.dumps(value, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputRejected(f"{what}: not JSON data: {exc}") from None
    if len(body) > MAX_VALUE_BYTES:
        raise InputRejected(f"{what}: over {MAX_VALUE_BYTES} bytes as JSON")
    return body


def seconds(value: object, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InputRejected(f"{what} must be a finite number of seconds")
    return float(value)


def job_values(
    plugin: str, job_name: str, run_at: float, every: float | None, key: ConversationKey | None,
    user_id: str | None, payload: dict[str, Any] | None,
) -> tuple[Any, ...]:
    """The checked columns of a new job, in JOB_COLS order from ``plugin`` to ``payload``."""
    if every is not None and seconds(every, "every") <= 0:
        raise InputRejected("every must be a positive number of seconds")
    if key is not None and not isinstance(key, ConversationKey):
        raise InputRejected(f"key must be a ConversationKey, not {type(key).__name__}")
    if payload is not None and not isinstance(payload, dict):
        raise InputRejected("payload must be a dict")
    where = (
        (name(key.platform, "platform"), name(key.chat_id, "chat id"), key.thread_id and name(key.thread_id, "thread id"))
        if key
        else (None, None, None)
    )
    return (
        name(plugin, "plugin"),
        name(job_name, "job name"),
        seconds(run_at, "run_at"),
        None if every is None else float(every),
        *where,
        None if user_id is None else name(user_id, "user id"),
        dump(payload or {}, f"plugin {plugin} job {job_name} payload"),
    )


def lease_values(key: object, owner: object, lease_s: object) -> tuple[str, str, float]:
    """A named lease (a conversation, a job) held by ``owner`` for ``lease_s`` seconds."""
    if seconds(lease_s, "lease") <= 0:
        raise InputRejected("a lease must last a positive number of seconds")
    return name(key, "lease name"), name(owner, "lease owner"), float(lease_s)  # type: ignore[arg-type]


def bucket_values(key: object, rate: object, burst: object) -> tuple[str, float, int]:
    """A token bucket: ``rate`` tokens per second up to ``burst``."""
    if seconds(rate, "rate") <= 0:
        raise InputRejected("a rate must be a positive number per second")
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
        raise InputRejected("a burst must be a whole number of at least 1")
    return text(key, "limit key"), float(rate), burst  # type: ignore[arg-type]


def quota_values(key: object, period: object, limit: object) -> tuple[str, str, int]:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InputRejected("a quota must be a whole number of at least 1")
    return text(key, "quota key"), text(period, "quota period"), limit


def refill(tokens: float, updated: float, rate: float, burst: int, now: float) -> tuple[float, float]:
    """Take one token from a bucket last seen at ``updated``: (tokens left, seconds to wait).

    The wait is 0.0 when a token was taken; otherwise nothing was taken.
    """
    tokens = min(float(burst), tokens + max(now - updated, 0.0) * rate)
    if tokens >= 1:
        return tokens - 1, 0.0
    return tokens, (1 - tokens) / rate


# -- rows -----------------------------------------------------------------------------


def user(row: Sequence[Any]) -> UserRecord:
    return UserRecord(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


def conversation(row: Sequence[Any]) -> Conversation:
    return Conversation(row[0], row[1], row[2], row[3], bool(row[4]))


def message(row: Sequence[Any]) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))


def memory(row: Sequence[Any]) -> Memory:
    return Memory(row[0], row[1], row[2], row[3], unvector(row[4]), row[5], row[6], row[7], row[8])


def audit_entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))


def profile(user_id: str, row: Sequence[Any] | None) -> Profile:
    if row is None:
        return Profile(user_id)
    return Profile(user_id, json.loads(row[0]), json.loads(row[1]), unvector(row[2]), row[3], row[4])


def job(row: Sequence[Any]) -> ScheduledJob:
    key = ConversationKey(row[5], row[6], row[7]) if row[5] is not None else None
    every = None if row[4] is None else float(row[4])
    return ScheduledJob(row[0], row[1], row[2], float(row[3]), every, key, row[8], json.loads(row[9]), row[10], row[11])


def export_document(
    uid: str,
    user_row: Sequence[Any] | None,
    profile_row: Sequence[Any] | None,
    memory_rows: Sequence[Sequence[Any]],
    message_rows: Sequence[Sequence[Any]],
    setting_rows: Sequence[Sequence[Any]],
    linked: list[str],
    audit_rows: Sequence[Sequence[Any]],
    plugin_rows: Sequence[Sequence[Any]],
    job_rows: Sequence[Sequence[Any]],
) -> dict[str, Any]:
    """``export_user``'s JSON-ready document, from the rows either backend selected."""
    saved = profile(uid, profile_row)
    return {
        "user_id": uid,
        "user": None if user_row is None else {
            "display_name": user_row[1],
            "first_seen": user_row[2],
            "last_seen": user_row[3],
            "message_count": user_row[4],
            "banned": bool(user_row[5]),
        },
        "profile": {
            "preferences": saved.preferences,
            "consent": saved.consent,
            "interest": None if saved.interest is None else list(saved.interest),
            "interest_count": saved.interest_count,
            "updated_at": saved.updated_at,
        },
        "memories": [
            {
                "id": m.id,
                "subject": m.subject,
                "text": m.text,
                "scope": m.scope,
                "created_at": m.created_at,
                "superseded_by": m.superseded_by,
                "embedding": None if m.embedding is None else list(m.embedding),
            }
            for m in map(memory, memory_rows)
        ],
        "messages": [
            dict(zip(("id", "conversation", "role", "user_id", "text", "created_at", "reply_to"), row))
            for row in message_rows
        ],
        "settings": [dict(zip(("scope", "name", "value"), row)) for row in setting_rows],
        "linked_identities": linked,
        "audit": [
            {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
             "outcome": e.outcome, "detail": e.detail}
            for e in map(audit_entry, audit_rows)
        ],
        "plugin_data": [
            {"plugin": plugin, "key": key, "value": json.loads(value), "updated_at": at}
            for plugin, key, value, at in plugin_rows
        ],
        "plugin_jobs": [
            {
                "id": j.id,
                "plugin": j.plugin,
                "name": j.name,
                "run_at": j.run_at,
                "every": j.every,
                "chat": j.key.qualified if j.key else None,
                "payload": j.payload,
            }
            for j in map(job, job_rows)
        ],
    }
