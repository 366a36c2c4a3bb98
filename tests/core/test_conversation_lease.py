"""Two bots on one PostgreSQL database (each with its own store, pool and lease owner,
as two worker processes have): one event delivered to both is answered once, and two
turns of one conversation landing on different bots are answered in order.

The bots share one event loop here so the test can hold a generation and watch the
other bot wait; what they share is only the database, as processes do.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from bots.app_factory import bot_app
from core.conversation_lease import ConversationLease
from core.generation.scripted import ScriptedGenerator
from core.storage.postgres import PostgresStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox
from tests.postgres_server import pg_server, pg_url  # noqa: F401


class WatchedStore(PostgresStore):
    """A PostgresStore that says when it got a lease and when it was refused one (waiting)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.won = asyncio.Event()
        self.refused = asyncio.Event()

    async def acquire_lease(self, name: str, owner: str, now: float, lease_s: float) -> bool:
        won = await super().acquire_lease(name, owner, now, lease_s)
        (self.won if won else self.refused).set()
        return won


async def _bots(stack: AsyncExitStack, url: str, holds: list[asyncio.Event | None]) -> list:
    bots = []
    for n, hold in enumerate(holds):
        store = WatchedStore(url)

        async def lease(bot, stack, store=store, n=n):
            bot.seams.middlewares.add(
                "recovery", "conversation_lease", ConversationLease(store, owner=f"worker-{n}"), before="dedupe"
            )

        generator = ScriptedGenerator([f"answer from worker {n}"], hold=hold)
        bots.append(await stack.enter_async_context(
            bot_app(make_settings(), store=store, generator=generator, features=[lease])))
    return bots


async def test_one_event_delivered_to_two_workers_is_answered_once(pg_url):
    hold = asyncio.Event()
    async with AsyncExitStack() as stack:
        first, second = await _bots(stack, pg_url, [hold, None])
        event = make_event("你好", user="telegram:7", event_id="telegram:update:42")
        outboxes = [RecordingOutbox(), RecordingOutbox()]
        answering = asyncio.create_task(first.dispatcher.feed(event, outboxes[0]))
        async with asyncio.timeout(30):
            await first.store.won.wait()  # worker 0 holds the conversation, its generation held
            redelivered = asyncio.create_task(second.dispatcher.feed(event, outboxes[1]))
            await second.store.refused.wait()  # the redelivery waits for it
            hold.set()
            await asyncio.gather(answering, redelivered)
        assert [len(o.messages) for o in outboxes] == [1, 0]
        conversation = await second.store.active_conversation(event.key)
        turns = await second.store.history(conversation.id)
        assert [(m.role, m.text) for m in turns] == [("user", "你好"), ("assistant", "answer from worker 0")]


async def test_turns_of_one_conversation_on_two_workers_are_answered_in_order(pg_url):
    hold = asyncio.Event()
    async with AsyncExitStack() as stack:
        first, second = await _bots(stack, pg_url, [hold, None])
        one = make_event("first question", user="telegram:8", event_id="telegram:update:1")
        two = make_event("second question", user="telegram:8", event_id="telegram:update:2")
        earlier = asyncio.create_task(first.dispatcher.feed(one, RecordingOutbox()))
        async with asyncio.timeout(30):
            await first.store.won.wait()
            later = asyncio.create_task(second.dispatcher.feed(two, RecordingOutbox()))
            await second.store.refused.wait()  # without the lease its turn would land in the middle
            hold.set()
            await asyncio.gather(earlier, later)
        conversation = await second.store.active_conversation(one.key)
        turns = await second.store.history(conversation.id)
        assert [m.text for m in turns] == [
            "first question", "answer from worker 0", "second question", "answer from worker 1"]
        assert all(m.answered for m in turns if m.role == "user")


async def test_commands_and_unaddressed_chatter_skip_the_lease(pg_url):
    async with AsyncExitStack() as stack:
        (bot,) = await _bots(stack, pg_url, [None])
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("/help", user="telegram:9"), outbox)
        await bot.dispatcher.feed(make_event("just chatting", user="telegram:9", addressed=False), outbox)
        assert not bot.store.refused.is_set()
        assert await bot.store.run_on_connection("leases", lambda c: c.fetchval("SELECT count(*) FROM leases")) == 0
