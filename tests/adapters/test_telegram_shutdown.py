"""Stopping and crashing: in-flight replies finish within the grace period, nothing is
lost and nothing is answered twice across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from adapters.telegram.adapter import serve
from core.events import ConversationKey
from core.generation.scripted import ScriptedGenerator
from core.storage.sqlite import SQLiteStore
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import GatedGenerator, TOKEN_ENV, bot_app, serving, telegram_settings, until

CHAT = 555


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


async def history(store) -> list[tuple[str, str]]:
    conversation = await store.active_conversation(ConversationKey("telegram", str(CHAT)))
    return [(m.role, m.text) for m in await store.history(conversation.id)]


async def journal_knows_a_message(database: Path, timeout: float = 30.0) -> None:
    """Until the send journal (adapters/telegram/journal.py) holds a shown message with its id
    (the other process writes it; there is no call to wait on, so the file is read again)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.closing(sqlite3.connect(database)) as db:
            rows = db.execute("SELECT value FROM plugin_data WHERE plugin = 'telegram.sends'").fetchall()
        if any(part[1] is not None for (value,) in rows for part in json.loads(value).get("parts") or []):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the send journal never recorded the streamed message")


def polling_stopped(fake: FakeBotAPI) -> bool:
    """PTB's last getUpdates (timeout 0) confirms what was fetched: receiving has ended."""
    return any(call.params.get("timeout") == 0 for call in fake.calls_of("getUpdates"))


async def test_stop_lets_an_in_flight_reply_finish(fake):
    generator = GatedGenerator("Partial answer", " and the rest.")
    async with bot_app(telegram_settings(fake, private_streaming="edit"), generator) as app:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(app, stop))
        await until(fake, lambda: fake.calls_of("getUpdates"), task)
        fake.user_message("tell me", chat_id=CHAT)
        await until(fake, lambda: fake.texts(CHAT) == ["Partial answer"], task)
        stop.set()
        await until(fake, lambda: polling_stopped(fake), task)
        assert not task.done()  # waiting for the reply
        generator.gate.set()
        await task
        assert await history(app.store) == [("user", "tell me"), ("assistant", "Partial answer and the rest.")]
    assert fake.texts(CHAT) == ["Partial answer and the rest."]


async def test_a_reply_cut_by_the_grace_period_keeps_its_text_and_is_not_answered_again(fake, tmp_path):
    settings = telegram_settings(fake, private_streaming="edit", shutdown_grace_s=0.2)
    async with bot_app(settings, GatedGenerator("Partial answer", "never shown"), SQLiteStore(tmp_path / "b.db")) as app:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(app, stop))
        await until(fake, lambda: fake.calls_of("getUpdates"), task)
        fake.user_message("tell me", chat_id=CHAT)
        await until(fake, lambda: fake.texts(CHAT) == ["Partial answer"], task)
        stop.set()
        await task
        assert await history(app.store) == [("user", "tell me"), ("assistant", "Partial answer")]
    later = ScriptedGenerator(["a second answer"])
    async with bot_app(settings, later, SQLiteStore(tmp_path / "b.db")) as app, serving(app, fake):
        pass
    assert later.requests == []
    assert fake.texts(CHAT) == ["Partial answer"]


async def test_a_reply_cut_before_any_text_is_answered_after_the_restart(fake, tmp_path):
    settings = telegram_settings(fake, shutdown_grace_s=0.2)
    generator = GatedGenerator("", "never shown")
    async with bot_app(settings, generator, SQLiteStore(tmp_path / "b.db")) as app:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(app, stop))
        await until(fake, lambda: fake.calls_of("getUpdates"), task)
        fake.user_message("are you there?", chat_id=CHAT)
        await asyncio.wait_for(generator.started.wait(), 15)
        stop.set()
        await task
        assert await history(app.store) == [("user", "are you there?")]
    assert fake.texts(CHAT) == []
    later = ScriptedGenerator(["Yes, I am here."])
    async with bot_app(settings, later, SQLiteStore(tmp_path / "b.db")) as app:
        async with serving(app, fake):
            await until(fake, lambda: fake.texts(CHAT) == ["Yes, I am here."])
        assert await history(app.store) == [("user", "are you there?"), ("assistant", "Yes, I am here.")]
    assert len(later.requests) == 1


async def test_a_crash_mid_reply_is_answered_once_after_the_restart(fake, tmp_path):
    database = tmp_path / "bot.db"
    child = Path(__file__).with_name("telegram_crash_child.py")
    output = tmp_path / "child.log"
    with output.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(child), fake.base_url, str(database), stdout=log, stderr=log
        )
    try:
        await fake.wait_for(lambda: fake.calls_of("getUpdates") or process.returncode is not None, timeout=60)
        assert process.returncode is None, output.read_text()
        fake.user_message("are you there?", chat_id=CHAT)
        await fake.wait_for(lambda: fake.texts(CHAT) == ["Partial answer"], timeout=30)
        await journal_knows_a_message(database)  # the response reached the bot: its id is journaled
    finally:
        process.kill()  # SIGKILL: no shutdown code runs
        await process.wait()
    fake.updates.append(fake.delivered[-1])  # Telegram may deliver it again after the crash

    generator = ScriptedGenerator(["Yes, I am here."])
    async with bot_app(telegram_settings(fake, private_streaming="edit"), generator, SQLiteStore(database)) as app:
        async with serving(app, fake):
            # the journal knew the message the killed process was streaming into: it is finished there
            await until(fake, lambda: fake.texts(CHAT) == ["Yes, I am here."])
            await until(fake, lambda: not fake.updates)  # the redelivered update was fetched
        assert await history(app.store) == [("user", "are you there?"), ("assistant", "Yes, I am here.")]
    assert len(generator.requests) == 1
    assert fake.texts(CHAT) == ["Yes, I am here."]
    assert len(fake.calls_of("sendMessage")) == 1  # one message in all: never sent twice
