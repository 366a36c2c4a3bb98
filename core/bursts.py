"""Bursts: one user's quick messages in one chat are answered as one turn (issue 17, item 1).

People type in bursts ("hi" / "quick question" / "how do I…"). Answering each line races
several replies against each other and burns the rate limit. :class:`BurstMerger` (limits
stage, before ``rate_limit``, so a burst counts once) keeps, per (chat, user):

* a *collecting* burst: the first chat turn opens it and waits ``[limits] merge_window_s``
  (groups) or ``dm_merge_window_s`` (DMs, 0 by default); every chat turn of that user in
  that chat meanwhile joins it, and its delivery ends with the turn that answers it (so an
  adapter that counts an update handled when ``feed`` returns finds it stored). The window
  closes, the texts are joined in order (one per line) and go on as one event: the first
  message's event id (so the store holds one user turn), the last message's id as the
  reply target, every image. The input stage then cuts the joined text to
  ``max_input_chars`` and says so (catalogs).
* its *turns*: a turn goes on into the chain at once; the chat service's conversation lock
  (inside ``track_turns``, so a /forget meanwhile still sweeps it) answers it after the
  user's reply in progress, never in parallel (``on_new_message = "queue"``, the default).
  With ``"restart"``, a message arriving while the user's reply is on screen cancels it: the
  shown messages are edited to a short notice (catalogs), the chat service keeps the partial
  reply as the answer to the earlier turn (stored once), and the new burst, once that screen
  is tidied, is answered next. A reply not yet on screen is not cancelled (the new burst
  waits), so a stored turn is never left unanswered.

Commands, chatter the bot does not answer and other users pass straight through. The state
lives in this process; with several processes the conversation lease orders their turns.
What is not stored: text past ``max_input_chars`` of the joined burst (as for one long
message). A follower's event id is recorded but not stored as a turn, so a redelivery of
it after a crash is answered as a turn of its own. A burst still in its window when the
user's /forget runs is stored after it (the window is outside ``track_turns``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from core.dispatcher import Context, Handler
from core.events import ChatKind, ConversationKey, IncomingMessage, Reply, SentMessage
from core.i18n import _
from core.ports import Outbox, Store
from core.recovery import is_chat_turn

log = logging.getLogger(__name__)

Mode = Literal["queue", "restart"]
STOPPED = _("(Stopped: I'm answering your newer message.)")


@dataclass
class Burst:
    """The messages of one user in one chat that will be answered as one turn."""

    events: list[IncomingMessage]
    grew: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever a message joins
    over: asyncio.Event = field(default_factory=asyncio.Event)  # its turn ended (answered, failed or stopped)

    def add(self, event: IncomingMessage) -> None:
        self.events.append(event)
        self.grew.set()

    def merged(self) -> IncomingMessage:
        if len(self.events) == 1:
            return self.events[0]
        events = self.in_sent_order()
        return dataclasses.replace(
            self.events[0],  # the opener's event id: the one user turn stored
            text="\n".join(event.text for event in events if event.text),
            message_id=events[-1].message_id or self.events[0].message_id,
            images=tuple(image for event in events for image in event.images),
            media_notice=" ".join(event.media_notice for event in events if event.media_notice),
        )

    def in_sent_order(self) -> list[IncomingMessage]:
        """The events as the user sent them. They reach the chain as concurrent tasks, so one
        may overtake another; Telegram message ids and Discord snowflakes grow within a chat."""
        if all(event.message_id and event.message_id.isdigit() for event in self.events):
            return sorted(self.events, key=lambda event: int(event.message_id or 0))
        return list(self.events)


Window = Callable[[float, Burst], Awaitable[None]]  # waits out a burst's window (tests drive it with ``grew``)


async def sleep_window(seconds: float, burst: Burst) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


class _Shown:
    """An Outbox wrapper that notes the reply messages a turn put on screen (not its notices)."""

    def __init__(self, inner: Outbox, notices: Callable[[], list[str]]) -> None:
        self._inner, self._notices = inner, notices
        self.max_message_length = inner.max_message_length
        self.markdown_fences = inner.markdown_fences
        self.drafts: list[SentMessage] = []

    def measure(self, text: str) -> int:
        return self._inner.measure(text)

    def edit_interval(self) -> float | None:
        return self._inner.edit_interval()

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        sent = await self._inner.send(key, reply)
        if not reply.private and reply.text not in self._notices():
            self.drafts.append(sent)
        return sent

    async def edit(self, sent: SentMessage, text: str) -> None:
        await self._inner.edit(sent, text)

    async def typing(self, key: ConversationKey) -> None:
        await self._inner.typing(key)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class _Turn:
    task: asyncio.Task[None]
    shown: _Shown
    restarted: bool = False
    over: asyncio.Event = field(default_factory=asyncio.Event)  # the turn and its clean-up are done


@dataclass
class _State:
    collecting: Burst | None = None
    turns: list[_Turn] = field(default_factory=list)  # this user's turns past their window, oldest first


class BurstMerger:
    """The middleware (see the module docstring)."""

    def __init__(
        self, store: Store, group_window_s: float, dm_window_s: float, mode: Mode = "queue", window: Window = sleep_window
    ) -> None:
        self._store = store
        self._group_window_s, self._dm_window_s = group_window_s, dm_window_s
        self._mode, self._window = mode, window
        self._states: dict[tuple[str, str], _State] = {}

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        event = ctx.event
        if not is_chat_turn(event):
            await call_next(ctx)
            return
        where = (event.key.qualified, event.user.qualified)
        state = self._states.setdefault(where, _State())
        self._restart(state)
        if state.collecting is not None:
            burst = state.collecting
            burst.add(event)
            log.debug("event %s joins the burst of %s in %s", event.event_id, where[1], where[0])
            await burst.over.wait()  # its delivery ends with the turn that answers it, as any message's does
            return
        burst = state.collecting = Burst([event])
        try:
            seconds = self._group_window_s if event.chat_kind is ChatKind.GROUP else self._dm_window_s
            await self._window(seconds, burst)
            for stopped in [turn for turn in state.turns if turn.restarted]:  # its screen is tidied first
                await stopped.over.wait()
        except BaseException:
            burst.over.set()
            state.collecting = None
            self._forget_if_idle(where, state)
            raise
        state.collecting = None
        if len(burst.events) > 1:
            log.info("events %s answered as one turn", ", ".join(e.event_id for e in burst.events))
        ctx.event = burst.merged()
        try:
            await self._run(ctx, call_next, state, where)
        finally:
            burst.over.set()

    async def _run(self, ctx: Context, call_next: Handler, state: _State, where: tuple[str, str]) -> None:
        shown = _Shown(ctx.outbox, lambda: [*ctx.notices, ctx.event.media_notice])
        ctx.outbox = shown
        turn = _Turn(asyncio.create_task(call_next(ctx), name=f"turn {ctx.event.event_id}"), shown)
        state.turns.append(turn)
        try:
            await turn.task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling() or not turn.restarted:  # type: ignore[union-attr]
                raise  # shutdown, /reset or /forget: as without bursts
            stopped = ctx.t(STOPPED)
            for sent in shown.drafts:  # the chat service stored the partial reply; the screen says why it stopped
                await shown.edit(sent, stopped)
            await shown.aclose()  # delivered before the next reply (Telegram drafts); closing again is a no-op
            found = await self._store.turn_by_event(ctx.event.event_id)
            if found is not None and found[1] is None:  # cancelled between the stream's end and its storing
                await self._store.add_reply(found[0].id, stopped)
        finally:
            state.turns.remove(turn)
            turn.over.set()
            self._forget_if_idle(where, state)

    def _restart(self, state: _State) -> None:
        if self._mode != "restart":
            return
        for turn in state.turns:
            if turn.shown.drafts and not turn.restarted:
                turn.restarted = True
                turn.task.cancel()

    def _forget_if_idle(self, where: tuple[str, str], state: _State) -> None:
        if state.collecting is None and not state.turns and self._states.get(where) is state:
            del self._states[where]
