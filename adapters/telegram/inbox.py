"""The durable inbox: an update is in the store before Telegram may forget it.

In polling mode python-telegram-bot's Updater confirms a batch of updates with its next
getUpdates (``offset`` = last + 1) as soon as it has put them on the Application's
queue; a process killed before their turns were stored lost them (the soak lost about
2,500 of 10,000 messages under 20 SIGKILLs). :class:`InboxQueue` is that queue
(``ApplicationBuilder.update_queue``, PTB's supported hook): its ``put`` writes the
update to the store first (idempotent on ``update_id``), so the Updater only confirms
stored updates. In webhook mode the same ``put`` runs before the 200 that acknowledges
the post.

An entry is deleted once its update is handled (the adapter's ``_finish``: the turn
stored and answered, a command run, or nothing to do). At start the entries left by a
killed process are put on the queue again, oldest first, before polling starts; the
dispatcher's de-duplication (core/recovery.py) then answers a turn that was stored but
not answered, processes one that was never stored, and drops the rest.

The rows live in the plugin key-value namespace ``telegram.inbox`` (no user id: they
last seconds, until the update is handled).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Bot, Update

from adapters.telegram.journal import SendJournal, TurnJournal
from core.events import IncomingMessage
from core.ports import PluginStore, Store
from core.recovery import is_chat_turn

log = logging.getLogger(__name__)

NAMESPACE = "telegram.inbox"
RETRY_FIRST_S, RETRY_MAX_S = 5.0, 60.0  # a turn whose sends all failed is answered again later


def _key(update_id: int) -> str:
    return f"{update_id:020d}"  # sorts as numbers (update ids are positive)


class Inbox:
    def __init__(self, store: PluginStore) -> None:
        self._store = store

    async def put(self, update: Update) -> None:
        await self._store.plugin_set(NAMESPACE, _key(update.update_id), json.loads(update.to_json()))

    async def done(self, update_id: int) -> None:
        await self._store.plugin_set(NAMESPACE, _key(update_id), None)

    async def pending(self, bot: Bot) -> list[Update]:
        """The updates stored but not handled, oldest first."""
        updates = []
        for key, data in (await self._store.plugin_items(NAMESPACE)).items():
            try:
                updates.append(Update.de_json(data, bot))
            except Exception:  # a row this version cannot read: say so, never loop on it
                log.exception("inbox entry %s cannot be read; dropped", key)
                await self._store.plugin_set(NAMESPACE, key, None)
        return updates


class InboxQueue(asyncio.Queue[Any]):
    """The Application's update queue: an update is stored before it is queued."""

    def __init__(self, inbox: Inbox) -> None:
        super().__init__()
        self.inbox = inbox

    async def put(self, item: Any) -> None:
        if isinstance(item, Update):
            await self.inbox.put(item)
        await super().put(item)

    async def replay(self, updates: list[Update]) -> None:
        """Queue updates already in the inbox (a killed process left them)."""
        for update in updates:
            await super().put(update)


class Intake:
    """When an update leaves the inbox (the adapter calls :meth:`begin` and :meth:`finish`).

    * A chat turn stored but unanswered after its handler (every send failed, or what a
      failed reply showed could not be stored) stays and is queued again with backoff,
      until it is older than ``window_s``.
    * A chat turn not stored may have joined another message's burst (core/bursts.py
      answers a user's quick messages as one turn, stored under the first one's id): its
      entry goes only when no other update of that user in that chat is in flight here,
      so a kill before the joint turn is stored loses none of them.
    """

    def __init__(
        self, store: Store, queue: InboxQueue, journal: SendJournal, window_s: float,
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
    ) -> None:
        self._store, self._queue, self._journal, self._window_s, self._spawn = store, queue, journal, window_s, spawn
        self._retries: dict[int, int] = {}  # update id -> tries so far
        self._active: Counter[tuple[str, str]] = Counter()  # (chat, user) -> updates in flight
        self._deferred: dict[tuple[str, str], list[int]] = {}
        self._handling: set[int] = set()  # update ids whose handler runs

    def begin(self, update_id: int, event: IncomingMessage | None) -> bool:
        """False if this update is being handled here already (replayed from the inbox at start
        and fetched again, as the killed process had not confirmed it): leave it to that one."""
        if update_id in self._handling:
            return False
        self._handling.add(update_id)
        if event is not None:
            self._active[(event.key.qualified, event.user.qualified)] += 1
        return True

    async def finish(self, update: Update, event: IncomingMessage | None, journal: TurnJournal) -> None:
        """The handler is done (not cancelled): take the update out, retry it, or wait for its burst."""
        if event is None:
            await journal.close()
            await self._queue.inbox.done(update.update_id)
        else:
            await self._decide(update, event, journal, (event.key.qualified, event.user.qualified))

    def end(self, update_id: int, event: IncomingMessage | None, *, finished: bool) -> None:
        """After :meth:`finish` (``finished``) or instead of it: the last of a user's updates in a
        chat to end takes the deferred ones out, if it finished (else the next start has them)."""
        self._handling.discard(update_id)
        if event is None:
            return
        where = (event.key.qualified, event.user.qualified)
        self._active[where] -= 1
        if self._active[where] > 0:
            return
        del self._active[where]
        deferred = self._deferred.pop(where, [])
        if finished and deferred:
            self._spawn(self._done(deferred), "telegram inbox")

    async def _done(self, update_ids: list[int]) -> None:
        for update_id in update_ids:
            await self._queue.inbox.done(update_id)

    async def _decide(self, update: Update, event: IncomingMessage, journal: TurnJournal, where: tuple[str, str]) -> None:
        found = await self._store.turn_by_event(event.event_id) if is_chat_turn(event) else None
        if found is not None and found[1] is None:
            await self._journal.settle(only=event.event_id)  # what a failed reply showed is its answer
            found = await self._store.turn_by_event(event.event_id)
        if found is not None and found[1] is None and time.time() - found[0].created_at < self._window_s:
            tries = self._retries[update.update_id] = self._retries.get(update.update_id, 0) + 1
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (tries - 1))
            log.warning("the turn of update %s is unanswered (sending failed); trying again in %.0f s",
                        update.update_id, delay)
            self._spawn(self._retry(update, delay), f"telegram retry {update.update_id}")
            return
        self._retries.pop(update.update_id, None)
        await journal.close()
        if found is None and is_chat_turn(event) and self._active[where] > 1:
            self._deferred.setdefault(where, []).append(update.update_id)  # perhaps part of a burst in flight
        else:
            await self._queue.inbox.done(update.update_id)

    async def _retry(self, update: Update, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._queue.replay([update])
