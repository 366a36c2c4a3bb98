"""Through the Discord fake: another bot is answered only when the bot file lists it, and at
most [limits] max_bot_replies times in a row in a chat; a human's message starts the count again."""

from __future__ import annotations

import pytest

from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import USER_ID, running_bot

OTHER_BOT, UNLISTED_BOT = 4242, 5353


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


def from_bot(fake, channel, author, text):
    return fake.message(channel, author, f"<@{fake.bot_id}> {text}", bot=True, mentions_bot=True)


async def test_a_bot_to_bot_loop_stops_at_the_cap_until_a_human_speaks(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    access = {"bots": [f"discord:{OTHER_BOT}"]}
    async with running_bot(fake, monkeypatch, replies=lambda request: "re: " + request.messages[-1].content,
                           access=access, limits={"max_bot_replies": 2}) as bot:
        await fake.dispatch("MESSAGE_CREATE", from_bot(fake, channel, UNLISTED_BOT, "spam"))
        for turn in range(4):  # the listed bot keeps talking to us, each time after our reply
            await fake.dispatch("MESSAGE_CREATE", from_bot(fake, channel, OTHER_BOT, f"ping {turn}"))
            if turn < 2:  # each answered one before the next arrives, as bots talking to each other do
                await fake.wait_for(lambda n=turn + 1: len(fake.texts_in(channel)) == n)
        await fake.dispatch("MESSAGE_CREATE", fake.message(channel, USER_ID, f"<@{fake.bot_id}> human here", mentions_bot=True))
        await fake.wait_for(lambda: len(fake.texts_in(channel)) == 3)
        await fake.dispatch("MESSAGE_CREATE", from_bot(fake, channel, OTHER_BOT, "ping again"))
        await fake.wait_for(lambda: len(fake.texts_in(channel)) == 4)
        asked = [request.messages[-1].content for request in bot.generator.requests]
    assert asked == ["ping 0", "ping 1", "human here", "ping again"]
    assert fake.texts_in(channel) == ["re: ping 0", "re: ping 1", "re: human here", "re: ping again"]
