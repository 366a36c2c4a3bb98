"""Who may use the console: the admin token, one-time sign-in links, sessions, CSRF.

* The admin token is compared in constant time; wrong tokens are counted per client
  address and across all addresses (:class:`FailureLimiter`), so guessing is slow even
  from many addresses.
* A sign-in link (``personabot web link``) carries a random nonce and an expiry, signed
  with a key file beside the database (:func:`link_key`); the serving process records
  each nonce it accepts in the store, so a link works once, across restarts too.
* A session is a random id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS),
  kept in memory with its own CSRF token: every state-changing request must send that
  token back, in a form field or a header. Sessions end at ``session_ttl_s`` or sign-out,
  and with the process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.ports import Store

COOKIE = "pb_console"
LINK_SCOPE = "web:link-used"  # settings scope: the nonces of used links
MAX_SESSIONS = 1000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (as UTF-8 digests: any length, any text)."""
    return hmac.compare_digest(_digest(given), _digest(expected))


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str
    expires: float


class Sessions:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s, self.clock = ttl_s, clock
        self._sessions: dict[str, Session] = {}

    def start(self) -> Session:
        now = self.clock()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        if len(self._sessions) >= MAX_SESSIONS:  # drop the oldest rather than grow without bound
            del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].expires)]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self.ttl_s)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        if session.expires <= self.clock():
            del self._sessions[session.id]
            return None
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)


class FailureLimiter:
    """At most ``per_client`` wrong tokens per address and ``10 × per_client`` overall per window."""

    def __init__(self, per_client: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_client, self.overall, self.window_s, self.clock = per_client, per_client * 10, window_s, clock
        self._failures: deque[tuple[float, str]] = deque()

    def _prune(self) -> None:
        cutoff = self.clock() - self.window_s
        while self._failures and self._failures[0][0] <= cutoff:
            self._failures.popleft()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        self._prune()
        mine = [at for at, who in self._failures if who == client]
        if len(mine) >= self.per_client:
            return max(1.0, mine[-self.per_client] + self.window_s - self.clock())
        if len(self._failures) >= self.overall:
            return max(1.0, self._failures[-self.overall][0] + self.window_s - self.clock())
        return 0.0

    def failed(self, client: str) -> None:
        self._failures.append((self.clock(), client))


def link_key(path: Path) -> bytes:
    """The key that signs sign-in links, kept beside the database (owner-only; made on first use).

    ``personabot web link`` runs while the bot holds its database open, so a link cannot
    be written there: it is signed with this key instead, and the serving process checks
    the signature and records the link as used in its store.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 32:
            raise ConfigError(f"{path}: console link key is damaged; delete the file to make a new one") from None
        return key
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the console link key: {exc.strerror or exc}") from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).hexdigest()


def make_link_token(key: bytes, ttl_s: float, clock: Callable[[], float] = time.time) -> str:
    """``nonce.expiry.signature``: valid until expiry, once."""
    body = f"{secrets.token_urlsafe(16)}.{int(clock() + ttl_s)}"
    return f"{body}.{_mac(key, body)}"


async def redeem_link_token(store: Store, key: bytes, token: str, clock: Callable[[], float] = time.time) -> bool:
    """True once for a well-signed, unexpired token; its nonce is then recorded as used."""
    parts = token.split(".") if isinstance(token, str) and len(token) < 200 else []
    if len(parts) != 3 or not parts[1].isdigit() or not token.isascii():
        return False
    nonce, expiry, signature = parts
    if not hmac.compare_digest(signature, _mac(key, f"{nonce}.{expiry}")) or int(expiry) <= clock():
        return False
    if await store.get_setting(LINK_SCOPE, nonce) is not None:
        return False
    await store.set_setting(LINK_SCOPE, nonce, expiry)
    return True
