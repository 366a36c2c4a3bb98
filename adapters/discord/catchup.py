"""Catching up on Discord: the messages a dead or re-identified process never received.

Discord replays missed gateway events only on a RESUME of the same session. A process
that was killed starts a new session (IDENTIFY), and so does one whose session Discord
invalidated; the MESSAGE_CREATE events sent meanwhile never come. What a user expects is
an answer anyway, late, as when the bot was slow. So :class:`CatchUp` keeps, per channel,
a cursor: the newest message id such that every message up to it that this process
received has been handled (stored and answered, or nothing to do). It is written to the
store (plugin key-value namespace ``discord.cursor``) as handlers finish; a message still
in flight holds it back, so a kill leaves the cursor before it.

At every READY (a start, or a new session after an invalid one) the bot reads each
channel's history after its cursor through REST (``GET channels/ID/messages?after=``)
and handles those messages as if they had just arrived; the core's de-duplication
(core/recovery.py) drops what was answered, answers what was stored but not answered
and processes the rest. Channels of the bot's servers that have no cursor yet start
from the time the last process was last seen alive (``~alive``, written at most every
``ALIVE_EVERY_S``; a minute before this start if none ever was), and get that cursor at once. Nothing older than ``window_s`` is caught up (as start-up recovery).

Not caught up: a DM from someone whose DM channel the bot has never seen (Discord gives
a bot no list of its DM channels), and new threads.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from datetime import datetime, timezone

from discord.utils import time_snowflake

from core.ports import PluginStore

log = logging.getLogger(__name__)

NAMESPACE = "discord.cursor"
ALIVE = "~alive"
ALIVE_EVERY_S = 10.0
FIRST_START_S = 60.0  # a store no process ever marked alive: server channels are read from this long before the start
HOLD_MARGIN_S = 2.0  # clocks: a message's id is stamped by Discord, the hold by this host


def snowflake_at(seconds: float) -> int:
    return time_snowflake(datetime.fromtimestamp(seconds, tz=timezone.utc))


class CatchUp:
    def __init__(self, store: PluginStore, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self._store, self._window_s, self._clock = store, window_s, clock
        # channel -> message id -> deliveries received, not handled (the gateway and a history read
        # can hand out one message twice; the first handler to end must not free the other's)
        self._pending: dict[int, Counter[int]] = {}
        self._seen: dict[int, int] = {}  # channel -> newest message id received
        self._written: dict[int, int] = {}  # channel -> cursor in the store
        self._catching: set[int] = set()  # channels whose history is being read: the cursor waits
        self._started = clock()
        self._held_since: float | None = self._started  # no session READY yet (or it is down) since then
        self._alive_at = 0.0  # when this process last wrote ``~alive``
        self._alive_written: float | None = None  # and the time it wrote there
        self._alive_seen: float | None = None  # when the last process was last seen alive
        self._at: dict[int, float] = {}  # channel -> when its cursor was written
        self._planned = False  # no READY has planned a history read yet: no cursor may move

    async def received(self, channel_id: int, message_id: int) -> None:
        """A message arrived; a channel seen for the first time gets its cursor at once (below
        it), so a kill before it is handled leaves a channel the next start knows to read."""
        self._pending.setdefault(channel_id, Counter())[message_id] += 1
        self._seen[channel_id] = max(self._seen.get(channel_id, 0), message_id)
        if channel_id not in self._written:
            now = self._clock()
            self._written[channel_id], self._at[channel_id] = message_id - 1, now
            await self._store.plugin_set(NAMESPACE, str(channel_id), {"id": message_id - 1, "at": now})

    async def handled(self, channel_id: int, message_id: int) -> None:
        """The handler of one message finished (not cancelled): move the cursor if it can."""
        pending = self._pending.get(channel_id)
        if pending is not None:
            pending[message_id] -= 1
            if pending[message_id] <= 0:
                del pending[message_id]
        if channel_id in self._catching:
            return
        await self._advance(channel_id)

    def begin(self, channel_id: int) -> None:
        self._catching.add(channel_id)

    def skip(self, channel_id: int) -> None:
        """A planned channel whose history is not read (no permission, another shard's)."""
        self._catching.discard(channel_id)

    async def end(self, channel_id: int) -> None:
        self._catching.discard(channel_id)
        await self._advance(channel_id)

    def hold(self) -> None:
        """The gateway session is down: what it misses may come after messages handled
        meanwhile (discord.py also hands out messages before its READY is complete), so
        until the next READY's plan (or a RESUME) no cursor moves past that moment."""
        if self._held_since is None:
            self._held_since = self._clock()

    def release(self) -> None:
        """RESUMED: the session missed nothing."""
        self._held_since = None

    async def _advance(self, channel_id: int) -> None:
        if not self._planned:
            # Before this process read any history, a channel's messages sent while no process
            # ran are behind the ones it just handled: the cursor stays, and so does the last
            # process's ``~alive`` (the plan reads channels without a cursor from there).
            return
        pending = self._pending.get(channel_id)
        mark = min(pending) - 1 if pending else self._seen.get(channel_id, 0)
        if not pending:
            self._pending.pop(channel_id, None)
        now = self._clock()
        safe = now if self._held_since is None else min(now, self._held_since - HOLD_MARGIN_S)
        if self._held_since is not None:
            mark = min(mark, snowflake_at(safe))
        if mark > self._written.get(channel_id, 0):
            self._written[channel_id], self._at[channel_id] = mark, now
            await self._store.plugin_set(NAMESPACE, str(channel_id), {"id": mark, "at": now})
        if now - self._alive_at >= ALIVE_EVERY_S:
            self._alive_at, self._alive_written = now, safe
            await self._store.plugin_set(NAMESPACE, ALIVE, {"at": safe})

    async def load(self) -> None:
        """Read the cursors (before the gateway connects, so no live message moves one first)."""
        items = await self._store.plugin_items(NAMESPACE)
        alive = items.pop(ALIVE, None)
        self._alive_seen = float(alive["at"]) if alive is not None else None
        for key, value in items.items():
            channel = int(key)
            self._written[channel] = max(self._written.get(channel, 0), int(value["id"]))
            self._at[channel] = float(value.get("at", 0))

    async def plan(self, server_channels: Iterable[int]) -> dict[int, int]:
        """Channel -> the message id to read its history after; their cursors wait until :meth:`end`.

        Called when a session is READY, before any of its messages is handled. A server
        channel with no cursor gets one now, from the last time alive (or, when no process
        ever wrote one, ``FIRST_START_S`` before this one started): a kill before its history
        is read leaves the next start the same point."""
        now = self._clock()
        floor = snowflake_at(now - self._window_s)
        points = {
            channel: max(cursor, floor)
            for channel, cursor in self._written.items()
            if self._at.get(channel, now) > now - self._window_s
        }
        alive = self._alive_written or self._alive_seen  # this process's, after a new session mid-run
        since = max(snowflake_at(alive - ALIVE_EVERY_S if alive is not None else self._started - FIRST_START_S), floor)
        for channel in server_channels:
            if channel not in points and channel not in self._written:
                points[channel] = since
                self._written[channel], self._at[channel] = since, now
                await self._store.plugin_set(NAMESPACE, str(channel), {"id": since, "at": now})
        self._catching.update(points)
        self._held_since = None
        self._planned = True
        return points
