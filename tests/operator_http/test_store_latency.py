"""Store.observe_latency on both backends: every operation reports its name and duration."""

from __future__ import annotations

import pytest

from core.events import ConversationKey
from core.storage.postgres import PostgresStore
from core.storage.sqlite import SQLiteStore
from tests.postgres_server import pg_server  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgresql"])
async def store(request, tmp_path):
    if request.param == "postgresql":
        opened = PostgresStore(await request.getfixturevalue("pg_server").create_database())
    else:
        opened = SQLiteStore(tmp_path / "bot.db" if request.param == "sqlite-file" else ":memory:")
    async with opened:
        yield opened


async def test_reads_and_writes_are_observed_by_operation_name_and_the_observer_can_be_removed(store):
    seen: list[tuple[str, float]] = []
    store.observe_latency(lambda operation, seconds: seen.append((operation, seconds)))
    conversation = await store.active_conversation(ConversationKey("telegram", "1"))
    turn = await store.add_user_message(conversation.id, "telegram:1", "hi 你好")
    await store.add_reply(turn.id, "hello")
    await store.history(conversation.id)
    names = [name for name, _ in seen]
    assert {"add_user_message", "add_reply", "history"} <= set(names)
    assert names.count("history") == 1  # one observation per operation, also in memory
    assert all(seconds >= 0 for _, seconds in seen)
    store.observe_latency(None)
    count = len(seen)
    await store.history(conversation.id)
    assert len(seen) == count
