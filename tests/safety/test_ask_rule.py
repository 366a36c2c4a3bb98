"""The console's delivery rule, end to end through `personabot ask` in a subprocess.

Exit 0 means the message is stored and answered (the reply is printed); any other exit
means it failed, and a retry with the same --id never stores or answers it twice. The
states a killed run can leave are prepared in the database directly (the SIGKILL itself
is exercised in test_recovery.py and bench/soak.py).
"""

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.events import ConversationKey
from core.storage.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
SHIM = "import sys; from bots.cli import main; sys.argv = ['personabot', *sys.argv[1:]]; main()"
BOT = 'name = "asktest"\n[model]\nbackend = "scripted"\nreplies = ["First.", "Second."]\n[storage]\npath = "ask.db"\n'
KEY = ConversationKey("console", "ana")


@pytest.fixture
def bot(tmp_path):
    (tmp_path / "bot.toml").write_text(BOT, encoding="utf-8")
    return tmp_path


def ask(folder: Path, text: str, key: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SHIM, "ask", text, "--bot", str(folder / "bot.toml"), "--user", "ana", "--id", key],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PERSONABOT_DATA_DIR": str(folder)},
    )


def rows(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / "ask.db") as raw:
        return raw.execute("SELECT role, text, answered FROM messages ORDER BY id").fetchall()


def prepare(folder: Path, event_id: str, store_turn: bool) -> None:
    """What a run killed after recording the event (and maybe storing the turn) leaves."""

    async def run() -> None:
        async with SQLiteStore(folder / "ask.db") as store:
            await store.record_event(event_id)
            if store_turn:
                conversation = await store.active_conversation(KEY)
                await store.add_user_message(conversation.id, "console:ana", "killed mid-reply", event_id)

    asyncio.run(run())


def test_a_repeated_call_prints_the_stored_reply_and_stores_nothing_twice(bot):
    first, again = ask(bot, "hello 你好", "k1"), ask(bot, "hello 你好", "k1")
    assert (first.returncode, first.stdout) == (0, "First.\n")
    assert (again.returncode, again.stdout) == (0, "First.\n")
    assert rows(bot) == [("user", "hello 你好", 1), ("assistant", "First.", 0)]


def test_a_turn_stored_by_a_killed_run_is_answered_by_the_retry(bot):
    prepare(bot, "console:ana:k2", store_turn=True)
    retry = ask(bot, "killed mid-reply", "k2")
    assert (retry.returncode, retry.stdout) == (0, "First.\n")
    assert rows(bot) == [("user", "killed mid-reply", 1), ("assistant", "First.", 0)]


def test_an_event_recorded_by_a_killed_run_but_never_stored_is_processed_by_the_retry(bot):
    prepare(bot, "console:ana:k3", store_turn=False)
    retry = ask(bot, "try again", "k3")
    assert (retry.returncode, retry.stdout) == (0, "First.\n")
    assert rows(bot) == [("user", "try again", 1), ("assistant", "First.", 0)]


def test_a_message_that_is_not_stored_and_answered_exits_1(bot):
    result = ask(bot, " \u200b ", "k4")
    assert result.returncode == 1
    assert "Please send me some text." in result.stdout
    assert "not stored and answered (safe to retry with the same --id)" in result.stderr
    assert rows(bot) == []
