"""The send journal: what a process may have put on screen, so a restart never sends twice.

Telegram has no idempotency key for sendMessage. A process killed after a reply went out
but before the chat service stored it used to send it again at the next start (the
soak's "answered twice"). So every message call made for an update is written to the
store first (:class:`TurnJournal`, told by the rate limiter just before the HTTP call,
after every wait): the text, the chat and the time. A 429 or 5xx answer takes the
attempt back; a success needs no write (the attempt already says "shown").

At start, before anything is answered (:meth:`SendJournal.settle`), every journal entry
whose user turn is stored but unanswered is settled: what was shown is stored as the
bot's reply, and the turn is not answered again. **An attempt whose outcome is unknown**
(killed during the HTTP call, or a timeout once it left) **counts as shown.** The attempt is written
after the last wait, right before the request leaves, so an unknown outcome means the
request was on its way: the kernel still delivers what was written to the socket when
the process dies, and resending would show it twice. The cost is the gap between the
journal's commit and the request's last byte: a kill there leaves that reply unsent and
unanswered (the user can ask again). One journaled call at a time crosses that gap
(adapters/telegram/wire.py); before, a kill on a loaded machine lost up to 30 replies
journaled in one commit. A reply cut short by the kill keeps what was
shown, as a cancelled reply does (core/chat.py).

Entries also carry the send times, which seed the next process's rate limiter (a
restart must not burst into a chat or group the killed process had just used). Once the
update is handled the entry keeps only chats and times, and it is deleted after
``KEEP_S``. The rows are keyed by update, not by user; no text outlives its turn.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from core.errors import NotFound
from core.ports import PluginStore, Store

log = logging.getLogger(__name__)

NAMESPACE = "telegram.sends"
KEEP_S = 120.0  # longer than the longest rate window (a group's minute)


class TurnJournal:
    """The journal entry of one update (a ``SendHook`` for adapters/telegram/limits.py).

    ``streaming``: the reply is streamed with edits, so what was shown may be a part of
    it; a known message is then finished by editing it (see :meth:`SendJournal.settle`).
    """

    def __init__(
        self, store: PluginStore, event_id: str, *, streaming: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._store, self.event_id, self.streaming, self._clock = store, event_id, streaming, clock
        self.parts: list[list[Any]] = []  # [chat id, message id or None, text] of each message shown
        self.pending: list[Any] | None = None  # [is an edit, chat id, message id, text] of the attempt in flight
        self.sends: list[list[Any]] = []  # [chat id, wall time]

    async def attempt(self, endpoint: str, chat_id: str, text: str | None, message_id: str | None, at: float) -> None:
        """A message call is about to leave (``at``: the time its rate slot was taken)."""
        self._resolve()
        self.pending = [endpoint == "editMessageText", chat_id, message_id, text or ""]
        self.sends.append([chat_id, at])
        await self._write()

    async def sent(self, message_id: str | None) -> None:
        """The last attempt succeeded; a new message's id is kept (a stream is finished by editing it)."""
        pending = self.pending
        self._resolve()
        if pending is not None and not pending[0] and message_id is not None and self.streaming:
            self.parts[-1][1] = message_id
            await self._write()

    async def failed(self) -> None:
        """The last attempt was refused (429, 5xx): nothing was shown, nothing was counted."""
        self.pending = None
        if self.sends:
            self.sends.pop()
        await self._write()

    async def close(self) -> None:
        """The update is handled: keep only the send times (for the next start's limiter),
        with those another handling of the same update wrote meanwhile (a recovery)."""
        self.parts, self.pending = [], None
        stored = await self._store.plugin_get(NAMESPACE, self.event_id) or {}
        sends = sorted({(str(chat), float(at)) for chat, at in [*self.sends, *(stored.get("sends") or [])]}, key=lambda s: s[1])
        self.sends = [list(send) for send in sends]
        await self._store.plugin_set(NAMESPACE, self.event_id, {"done": True, "sends": self.sends} if self.sends else None)

    def shown(self) -> str:
        self._resolve()
        return "\n".join(text for _, _, text in self.parts if text.strip())

    def last_message(self) -> tuple[str, str] | None:
        """(chat id, message id) of the last message shown, where known."""
        self._resolve()
        if self.parts and self.parts[-1][1] is not None:
            return str(self.parts[-1][0]), str(self.parts[-1][1])
        return None

    def _resolve(self) -> None:
        """The previous attempt was not taken back: it is on screen (or counted as such)."""
        if self.pending is None:
            return
        edit, chat_id, message_id, text = self.pending
        for part in reversed(self.parts):
            if edit and part[1] is not None and part[1] == message_id:
                part[2] = text
                break
        else:
            if edit and self.parts:
                self.parts[-1][2] = text  # streaming edits the message it sent last
            else:
                self.parts.append([chat_id, message_id if edit else None, text])
        if edit and self.parts and self.parts[-1][1] is None:
            self.parts[-1][1] = message_id
        self.pending = None

    async def _write(self) -> None:
        value = {"parts": self.parts, "pending": self.pending, "sends": self.sends, "streaming": self.streaming}
        await self._store.plugin_set(NAMESPACE, self.event_id, value)

    @classmethod
    def load(
        cls, store: PluginStore, event_id: str, value: dict[str, Any], clock: Callable[[], float] = time.time
    ) -> "TurnJournal":
        journal = cls(store, event_id, streaming=bool(value.get("streaming")), clock=clock)
        journal.parts = [list(part) for part in value.get("parts") or []]
        journal.pending = list(value["pending"]) if value.get("pending") else None
        journal.sends = [list(send) for send in value.get("sends") or []]
        return journal


class SendJournal:
    """All entries: settled and pruned at start, their send times read by the limiter."""

    def __init__(self, store: Store, plugin_store: PluginStore, clock: Callable[[], float] = time.time) -> None:
        self._store, self._plugins, self._clock = store, plugin_store, clock

        self.resume: dict[str, tuple[str, str]] = {}  # event id -> (chat, message) a recovery finishes

    async def for_event(self, event_id: str, *, streaming: bool = False) -> TurnJournal:
        """The entry of one update, with what an earlier handling of it (this process's or a
        killed one's) recorded: its sends still count for the limiter at the next start."""
        earlier = await self._plugins.plugin_get(NAMESPACE, event_id)
        if earlier is None:
            return TurnJournal(self._plugins, event_id, streaming=streaming, clock=self._clock)
        journal = TurnJournal.load(self._plugins, event_id, earlier, self._clock)
        journal.streaming = streaming
        return journal

    async def recent_sends(self) -> list[tuple[str, float]]:
        since = self._clock() - KEEP_S
        sends: list[tuple[str, float]] = []
        for value in (await self._plugins.plugin_items(NAMESPACE)).values():
            sends += [(str(chat), float(at)) for chat, at in value.get("sends") or [] if float(at) > since]
        return sends

    async def settle(self, only: str | None = None) -> int:
        """Store what was shown as the reply of each turn it answered; returns how many.

        Runs before anything of this process is answered (or, with ``only``, for one
        update whose handler has finished), so nothing else writes those turns meanwhile.
        """
        settled = 0
        items = await self._plugins.plugin_items(NAMESPACE, prefix=only or "")
        for event_id, value in items.items():
            if value.get("done") or (only is not None and event_id != only):
                continue
            journal = TurnJournal.load(self._plugins, event_id, value, self._clock)
            text = journal.shown()
            found = await self._store.turn_by_event(event_id) if text else None
            last = journal.last_message()
            if found is not None and found[1] is None and journal.streaming and last is not None:
                self.resume[event_id] = last  # a stream cut short: the answer goes into that message
                log.info("turn of %s: the reply a killed process was streaming is finished in its message", event_id)
                continue  # the entry stays as it is until that answer is made (a second kill finds it again)
            elif found is not None and found[1] is None:
                with contextlib.suppress(NotFound):  # a /forget deleted the turn meanwhile
                    await self._store.add_reply(found[0].id, text)
                    settled += 1
                    log.info("turn of %s: the reply a killed process showed is stored, not sent again", event_id)
            await journal.close()
        return settled

    async def prune(self) -> int:
        """Delete the entries whose last send is older than ``KEEP_S`` (and settled ones without sends)."""
        since, removed = self._clock() - KEEP_S, 0
        for event_id, value in (await self._plugins.plugin_items(NAMESPACE)).items():
            sends = value.get("sends") or []
            if value.get("done") and all(float(at) <= since for _, at in sends):
                await self._plugins.plugin_set(NAMESPACE, event_id, None)
                removed += 1
        return removed
