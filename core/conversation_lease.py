"""One process at a time per conversation, when several bot processes share a store.

Why. De-duplication (core/recovery.py) decides on a redelivered event by what the store
holds, and the chat service orders a conversation's turns with an in-process lock.
Across processes neither is enough: a webhook redelivery landing on a second worker
while the first is still generating finds the turn "stored, not answered" (or not yet
stored) and answers it again, and two turns of one chat on two workers race.

Design. :class:`ConversationLease` is the outermost middleware for chat turns. Before
anything else it takes the store lease ``conversation:<key>`` (``Store.acquire_lease``)
and holds it, renewed every third of its length, until the turn is answered; the
other processes wait for it (polling with backoff). Inside the lease the recovery
check is race-free across processes, so a duplicate waits, then finds the turn
answered and is dropped; and the turns of one conversation are answered one after
another, in the order they obtained the lease (for one user writing to one chat, the
order they were sent in). A process that dies holding a lease stops renewing it; it
expires after ``lease_s`` and the next process goes on (answering the turn the dead
one left, through the usual recovery). Commands and chatter the bot does not answer
skip the lease: commands run at most once already (``record_event`` is atomic).

Cost: two store writes per chat turn, so bootstrap adds it only when the store is
shared (PostgreSQL); one SQLite process needs nothing beyond its in-process lock.
Clocks: lease times are wall-clock seconds, so the hosts must keep their clocks in
sync (NTP) to well under ``lease_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable

from core.dispatcher import Context, Handler
from core.errors import StorageError
from core.ports import Store
from core.recovery import is_chat_turn

log = logging.getLogger(__name__)

LEASE_S = 60.0


def lease_needed(storage_url: str | None) -> bool:
    """A store several processes share (PostgreSQL) needs the lease; SQLite serves one process."""
    return storage_url is not None and not storage_url.startswith("sqlite:")
FIRST_POLL_S = 0.02
MAX_POLL_S = 0.5


class ConversationLease:
    """The middleware (see the module docstring). ``owner`` names this process in the store."""

    __name__ = "conversation_lease"

    def __init__(
        self,
        store: Store,
        *,
        owner: str | None = None,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease_s = lease_s
        self._clock = clock

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        if not is_chat_turn(ctx.event):
            await call_next(ctx)
            return
        async with self.hold(ctx.event.key.qualified, ctx.event.event_id):
            await call_next(ctx)

    @contextlib.asynccontextmanager
    async def hold(self, conversation_key: str, event_id: str) -> AsyncIterator[None]:
        """Hold the lease of one conversation for one event (start-up recovery uses it too)."""
        name = f"conversation:{conversation_key}"
        # Two events of one conversation in this process take turns here too; the
        # lease owner is per event so the store decides between them as between processes.
        owner = f"{self.owner}:{event_id}"
        await self._acquire(name, owner)
        renewer = asyncio.create_task(self._renew(name, owner), name=f"lease-renew:{name}")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with contextlib.suppress(StorageError):
                await asyncio.shield(self._store.release_lease(name, owner))

    async def _acquire(self, name: str, owner: str) -> None:
        delay = FIRST_POLL_S
        while not await self._store.acquire_lease(name, owner, self._clock(), self._lease_s):
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_POLL_S)

    async def _renew(self, name: str, owner: str) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                if not await self._store.acquire_lease(name, owner, self._clock(), self._lease_s):
                    log.warning("lease %s was lost (this process stalled past %.0f s)", name, self._lease_s)
                    return
            except StorageError as error:
                log.warning("could not renew lease %s: %s", name, error)
