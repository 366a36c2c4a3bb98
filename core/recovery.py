"""Exactly-once answers across crashes, and bans that follow linked identities.

Recording an event id before its turn is stored is not enough: a process killed
between the two would drop the redelivered event, and the message would be lost.
:class:`ResumingDedupe`, the first middleware of every App, decides on a redelivery
by what the store holds (``Store.turn_by_event``):

================================  ===========================================
redelivered event                 what happens
================================  ===========================================
command, or not for the bot       dropped (commands run at most once)
chat turn stored and answered     dropped: it is never stored or answered twice
chat turn stored, not answered    answered now (the crash hit mid-generation)
chat turn never stored            processed as new (the crash hit before)
================================  ===========================================

A second delivery of an event still in flight in this process is dropped.
A user turn and its reply are each one SQLite transaction, and the reply's
transaction also marks the turn answered, so no crash leaves half a turn.
"""

from __future__ import annotations

import logging
from core.chat import ChatService
from core.dispatcher import Context, Handler
from core.events import IncomingMessage
from core.ports import Store
from core.records import StoredMessage

log = logging.getLogger(__name__)


def is_chat_turn(event: IncomingMessage) -> bool:
    """Events the chat service stores as a user turn (as opposed to commands and chatter)."""
    return event.command is None and event.addressed_to_bot


class ResumingDedupe:
    """The de-duplication middleware (see the module docstring)."""

    def __init__(self, store: Store, chat: ChatService) -> None:
        self._store, self._chat = store, chat
        self._in_flight: set[str] = set()

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        event_id = ctx.event.event_id
        if event_id in self._in_flight:
            log.debug("event %s delivered again while in flight; dropped", event_id)
            return
        self._in_flight.add(event_id)
        try:
            await self._dispatch(ctx, call_next)
        finally:
            self._in_flight.discard(event_id)

    async def _dispatch(self, ctx: Context, call_next: Handler) -> None:
        store, event = self._store, ctx.event
        if await store.record_event(event.event_id):
            await call_next(ctx)
            return
        if not is_chat_turn(event):
            log.debug("duplicate event %s dropped", event.event_id)
            return
        found = await store.turn_by_event(event.event_id)
        if found is None:
            log.info("redelivered event %s was never stored; processing it", event.event_id)
            await call_next(ctx)
        elif found[1] is None:
            log.info("redelivered event %s was stored but not answered; answering it", event.event_id)
            await resume_turn(ctx, found[0], store, self._chat)
        else:
            log.debug("duplicate event %s already answered; dropped", event.event_id)


async def resume_turn(ctx: Context, turn: StoredMessage, store: Store, chat: ChatService) -> bool:
    """Answer a stored user turn that a crash left unanswered; False if nothing was due.

    Runs under the conversation's lock and checks again there, so two recoveries of the
    same turn (startup recovery and a redelivery) answer it once.
    """
    event = ctx.event
    async with chat.lock(event.key.qualified):
        if turn.event_id is not None:
            found = await store.turn_by_event(turn.event_id)
            if found is None or found[1] is not None:
                return False
        conversation = await store.active_conversation(event.key)
        if conversation.id != turn.conversation_id:
            log.info("turn %s belongs to a conversation that was reset; not answered", turn.id)
            return False
        await chat.respond(ctx, conversation, turn)
    return True


class DropBanned:
    """Ignore banned users: a ban on any linked identity counts.

    Banned users are ignored silently (no answer gives them nothing to probe).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        if (identity := await self._store.banned_identity(ctx.event.user.qualified)) is not None:
            log.debug("event %s from %s dropped: %s is banned", ctx.event.event_id, ctx.event.user, identity)
            return
        await call_next(ctx)
