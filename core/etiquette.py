"""Group etiquette the core enforces for every platform (issue 17, item 1).

``BotTurns`` (access stage, when ``[access] bots`` lists any): a message from another bot
is answered only when that bot is listed, and at most ``[limits] max_bot_replies`` times in
a row per chat; a human's message in the chat starts the count again. Two bots that answer
each other therefore stop after a few turns instead of looping. The count lives in this
process (a bot run as several processes caps each process's share).

``ChannelCooldown`` (limits stage, when ``[limits] channel_cooldown_s`` > 0): in a group, the
bot takes at most one chat turn per channel per cooldown; messages addressed to it in between
are ignored (logged), commands still work. DMs have no cooldown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from core.dispatcher import Context, Handler
from core.events import ChatKind

log = logging.getLogger(__name__)


class BotTurns:
    """The per-chat cap on consecutive replies to bots."""

    def __init__(self, bots: Collection[str], cap: int) -> None:
        self._bots, self._cap = frozenset(bots), cap
        self._in_a_row: dict[str, int] = {}  # chat -> replies to bots since a human spoke

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        event = ctx.event
        chat = event.key.qualified
        if not event.from_bot:
            self._in_a_row.pop(chat, None)
            await call_next(ctx)
            return
        if event.user.qualified not in self._bots:
            log.info("event %s: %s is a bot the bot file does not list; ignored", event.event_id, event.user)
            return
        count = self._in_a_row.get(chat, 0)
        if count >= self._cap:
            log.info("event %s: %d replies to bots in a row in %s; waiting for a human", event.event_id, count, chat)
            return
        self._in_a_row[chat] = count + 1
        await call_next(ctx)


class ChannelCooldown:
    """One chat turn per group channel per ``seconds``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds, self._clock = seconds, clock
        self._last: dict[str, float] = {}  # channel -> when the bot last took a chat turn there

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        event = ctx.event
        if event.chat_kind is not ChatKind.GROUP or event.command is not None or not event.addressed_to_bot:
            await call_next(ctx)
            return
        channel, now = event.key.qualified, self._clock()
        last = self._last.get(channel)
        if last is not None and now - last < self._seconds:
            log.info("event %s: %s is cooling down (%.1f s left)", event.event_id, channel, self._seconds - (now - last))
            return
        self._last[channel] = now
        await call_next(ctx)
