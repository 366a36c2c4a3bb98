"""Messages the bot never received on the gateway are answered at the next READY, once:
sent while no process ran (a new session gets no replay), or while a session Discord
invalidated was down (the client IDENTIFYs again). The bot reads each channel's history
after its cursor (adapters/discord/catchup.py)."""

from __future__ import annotations

import pytest

from core.storage.sqlite import SQLiteStore
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import USER_ID, running_bot

REPLY = "Hello there, friend!"
DM = 10**17 + USER_ID % 10**17  # the DM channel the fake gives USER_ID


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


async def test_messages_sent_while_the_bot_was_down_are_answered_at_its_next_start(fake, monkeypatch, tmp_path):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    database = tmp_path / "bot.db"
    async with running_bot(fake, monkeypatch, store=SQLiteStore(database), channels=(str(channel),)):
        await fake.post(fake.message(DM, USER_ID, "first 你好"))
        await fake.post(fake.message(channel, USER_ID, "in the channel"))
        await fake.wait_for(lambda: len(fake.texts_in(DM)) == 1 and len(fake.texts_in(channel)) == 1)
    fake.sessions.clear()  # no process: Discord delivers nothing, the messages stay in their channels
    assert await fake.post(fake.message(DM, USER_ID, "while you were away")) == 0
    late = fake.message(channel, USER_ID, "also while away")
    assert await fake.post(late) == 0
    async with running_bot(fake, monkeypatch, store=SQLiteStore(database), channels=(str(channel),)):
        await fake.wait_for(lambda: len(fake.texts_in(DM)) == 2 and len(fake.texts_in(channel)) == 2)
        assert fake.calls_to("GET", rf"channels/{DM}/messages") and fake.calls_to("GET", rf"channels/{channel}/messages")
        answers = [m for m in fake.messages_in(channel) if m.get("message_reference")]
        assert str(answers[-1]["message_reference"]["message_id"]) == late["id"]
    assert fake.texts_in(DM) == [REPLY, REPLY] and len(fake.texts_in(channel)) == 2  # each message once
    async with SQLiteStore(database) as store:  # the bot stopped after storing its replies
        assert await store.unanswered("discord") == []


async def test_a_session_lost_mid_run_catches_up_after_it_identifies_again(fake, monkeypatch):
    async with running_bot(fake, monkeypatch):
        await fake.post(fake.message(DM, USER_ID, "hello"))
        await fake.wait_for(lambda: len(fake.texts_in(DM)) == 1)
        await fake.drop_connection(4000, forget=True)  # the RESUME is refused: IDENTIFY, no replay
        assert await fake.post(fake.message(DM, USER_ID, "are you still there?")) == 0
        await fake.wait_for(lambda: len(fake.texts_in(DM)) == 2, timeout=30)
        await fake.wait_for(lambda: fake.identifies == 2, timeout=30)  # its READY reads the history again
        answered = len(fake.calls_to("POST", rf"channels/{DM}/messages"))
        await fake.wait_for(lambda: fake.calls_to("GET", rf"channels/{DM}/messages"), timeout=30)
    assert fake.texts_in(DM) == [REPLY, REPLY]  # answered once, however often the history was read
    assert len(fake.calls_to("POST", rf"channels/{DM}/messages")) == answered


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_message_handled_before_the_first_ready_does_not_move_a_cursor_past_missed_ones(tmp_path):
    """discord.py hands out MESSAGE_CREATE before its READY is complete: a message handled
    then must not carry the channel's cursor past the ones sent while no process ran."""
    from adapters.discord.catchup import CatchUp, snowflake_at

    channel, base = 42, 1_800_000_000.0
    handled_before, sent_while_down = snowflake_at(base), snowflake_at(base + 5)
    async with SQLiteStore(tmp_path / "bot.db") as store:
        first = CatchUp(store, window_s=3600, clock=Clock(base))
        await first.load()
        await first.plan([])
        await first.received(channel, handled_before)
        await first.handled(channel, handled_before)  # the cursor is at this message; then the process dies
        clock = Clock(base + 10)
        second = CatchUp(store, window_s=3600, clock=clock)
        await second.load()
        clock.now = base + 11
        live = snowflake_at(clock.now)
        await second.received(channel, live)  # arrives before the READY's plan
        await second.handled(channel, live)
        points = await second.plan([])
    assert handled_before <= points[channel] < sent_while_down


async def test_an_answer_sent_again_for_the_message_it_replies_to_is_the_same_message(fake, monkeypatch):
    """A burst's answer replies to its last message; a redelivery of that message after a kill
    is answered as a turn of its own, and its answer must find the burst's (nonce ``M-n``)
    instead of showing a second one. Notices are not answers and carry no nonce."""
    from adapters.discord.outbox import ChannelOutbox
    from core.events import ConversationKey, Reply

    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, channels=(str(channel),)) as running:
        last = fake.message(channel, USER_ID, "second line of a burst")
        key = ConversationKey("discord", str(channel))
        for text in ("the burst's answer", "the redelivery's answer"):  # two processes: two outboxes
            outbox = ChannelOutbox(running.bot, None, in_server=True, edit_interval=None)
            await outbox.send(key, Reply(text, reply_to=last["id"], answer=True))
        for _ in range(2):
            outbox = ChannelOutbox(running.bot, None, in_server=True, edit_interval=None)
            await outbox.send(key, Reply("a notice", reply_to=last["id"]))
    assert fake.texts_in(channel) == ["the redelivery's answer", "a notice", "a notice"]
