"""Redelivered events after a crash: nothing lost, nothing answered twice; linked bans."""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from core.dispatcher import Context
from core.generation.scripted import ScriptedGenerator
from core.recovery import resume_turn
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.safety.conftest import safe_app, stored_turns

ROOT = Path(__file__).resolve().parents[2]
REPLY = "Hello there, friend!"


async def test_a_redelivered_answered_message_is_dropped(app):
    event, outbox = make_event("hello", event_id="telegram:update:1"), RecordingOutbox()
    await app.dispatcher.feed(event, outbox)
    await app.dispatcher.feed(event, outbox)
    assert outbox.texts == [REPLY]
    assert await stored_turns(app, event.key) == [("user", "hello", True), ("assistant", REPLY, False)]


async def crash_after_storing(app, event):
    """What a process killed mid-generation leaves: the event recorded, the turn stored."""
    await app.store.record_event(event.event_id)
    conversation = await app.store.active_conversation(event.key)
    await app.store.add_user_message(conversation.id, event.user.qualified, event.text, event.event_id)


async def test_a_turn_stored_but_not_answered_is_answered_on_redelivery_once(app):
    event, outbox = make_event("are you there?", event_id="telegram:update:2"), RecordingOutbox()
    await crash_after_storing(app, event)
    await app.dispatcher.feed(event, outbox)
    await app.dispatcher.feed(event, outbox)
    assert outbox.texts == [REPLY]
    assert await stored_turns(app, event.key) == [("user", "are you there?", True), ("assistant", REPLY, False)]


async def test_an_event_recorded_but_never_stored_is_processed_on_redelivery(app):
    event, outbox = make_event("first try", event_id="telegram:update:3"), RecordingOutbox()
    await app.store.record_event(event.event_id)  # the crash came before the turn was stored
    await app.dispatcher.feed(event, outbox)
    assert outbox.texts == [REPLY]
    assert await stored_turns(app, event.key) == [("user", "first try", True), ("assistant", REPLY, False)]


async def test_a_redelivered_command_runs_at_most_once(app):
    event, outbox = make_event("/admin ban telegram:5", user="telegram:999", event_id="telegram:update:4"), RecordingOutbox()
    await app.dispatcher.feed(event, outbox)
    await app.dispatcher.feed(event, outbox)
    assert len(outbox.texts) == 1
    assert [e.action for e in await app.store.recent_audit(10)] == ["admin ban"]


async def test_a_second_delivery_while_the_first_is_in_flight_is_dropped():
    hold = asyncio.Event()
    async with safe_app(generator=ScriptedGenerator([REPLY, "again"], hold=hold)) as app:
        event, outbox = make_event("hi", event_id="discord:message:5"), RecordingOutbox()
        first = asyncio.create_task(app.dispatcher.feed(event, outbox))
        while app.generator.in_flight == 0:
            await asyncio.sleep(0)
        await app.dispatcher.feed(event, outbox)  # a gateway resume replays it
        hold.set()
        await first
        assert outbox.texts == [REPLY]
        assert len(await stored_turns(app, event.key)) == 2


async def test_two_recoveries_of_one_turn_answer_it_once(app):
    event, outbox = make_event("pending", event_id="telegram:update:6"), RecordingOutbox()
    await crash_after_storing(app, event)
    turn, reply = await app.store.turn_by_event(event.event_id)
    assert reply is None
    results = await asyncio.gather(*(resume_turn(Context(event, outbox), turn, app.store, app.chat) for _ in range(2)))
    assert sorted(results) == [False, True] and outbox.texts == [REPLY]


async def test_a_ban_follows_linked_identities(app):
    outbox = RecordingOutbox()
    await app.store.link_identities("telegram:1", "discord:2")
    await app.dispatcher.feed(make_event("/admin ban discord:2", user="telegram:999"), outbox)
    before = len(outbox.texts)
    await app.dispatcher.feed(make_event("hello", user="telegram:1"), outbox)
    await app.dispatcher.feed(make_event("/help", user="telegram:1"), outbox)
    assert len(outbox.texts) == before  # ignored on every platform, commands included
    await app.store.unlink_identity("telegram:1")
    await app.dispatcher.feed(make_event("hello", user="telegram:1"), outbox)
    assert outbox.last == REPLY


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from bots.app_factory import bot_app
    from core.generation.scripted import ScriptedGenerator
    from core.safety import setup_safety
    from core.storage.sqlite import SQLiteStore
    from tests.conftest import make_event, make_settings
    from tests.fakes import RecordingOutbox

    def reply(request):
        print("generating", flush=True)  # the turn is stored; the parent kills us now
        return "never finished"

    async def main():
        generator = ScriptedGenerator(reply, hold=asyncio.Event())  # never released
        async with bot_app(make_settings(), store=SQLiteStore(sys.argv[1]), generator=generator,
                       features=[setup_safety]) as app:
            await app.dispatcher.feed(make_event("survive me", event_id="telegram:update:77"), RecordingOutbox())

    asyncio.run(main())
    """
)


async def test_sigkill_mid_generation_loses_nothing_and_the_redelivery_is_answered_once(tmp_path):
    db = tmp_path / "bot.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout.readline().strip() == "generating"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert raw.execute("SELECT role, text, answered FROM messages").fetchall() == [("user", "survive me", 0)]
    async with safe_app(store=SQLiteStore(db)) as app:
        event, outbox = make_event("survive me", event_id="telegram:update:77"), RecordingOutbox()
        await app.dispatcher.feed(event, outbox)
        await app.dispatcher.feed(event, outbox)
        assert outbox.texts == [REPLY]
        assert await stored_turns(app, event.key) == [("user", "survive me", True), ("assistant", REPLY, False)]
