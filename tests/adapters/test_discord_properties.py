"""Properties of what reaches Discord, for any reply text (hypothesis), through the real outboxes.

discord.py builds the HTTP requests; the fake records them. For every text: each
message fits in 2000, the parts give back the text, no part leaves a code block open,
and no request allows a ping beyond the author being answered.
"""

from __future__ import annotations

import asyncio

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord.bot import api_endpoint
from adapters.discord.outbox import ChannelOutbox, InteractionOutbox
from core.events import ConversationKey, Reply
from core.text import FENCE, utf16_len
from tests.adapters.discord_fake_server import FakeDiscord

TOKENS = [
    "@everyone",
    "@here",
    "<@123456789012345678>",
    "<@!123456789012345678>",
    "<@&876543210987654321>",
    "<#123456789012345678>",
    "\n" + FENCE + "\n",  # a fence on its own line (core.text keeps a fence's info string short)
    FENCE + "py\n",
    "\n",
    "\n\n",
    " ",
    "。",
    "你好世界",
    "👩\u200d💻",
    "مرحبا",
    "word " * 40,
    "x" * 700,
    "字" * 900,
    "😀" * 300,
]
reply_texts = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=120)), max_size=40).map("".join)


@pytest.fixture(scope="module")
def wire():
    """One fake server and one logged-in discord.py client, shared by every example."""
    loop = asyncio.new_event_loop()
    fake = FakeDiscord()
    loop.run_until_complete(fake.__aenter__())
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    client = discord.Client(intents=discord.Intents.none())
    with api_endpoint(fake.base_url):
        loop.run_until_complete(client.login(fake.token))
        yield loop, fake, client, guild, channel
        loop.run_until_complete(client.close())
    loop.run_until_complete(fake.__aexit__(None, None, None))
    loop.close()


def without_fences(text: str) -> str:
    """The text minus what splitting may add: fence lines (with their language) and newlines."""
    return text.replace(FENCE + "py", "").replace(FENCE, "").replace("\n", "")


def check_parts(text: str, contents: list[str]) -> None:
    assert all(utf16_len(content) <= 2000 for content in contents)
    if not text.strip():
        assert contents == ["…"]
        return
    if text.count(FENCE) % 2 == 0:
        assert all(content.count(FENCE) % 2 == 0 for content in contents)
    if FENCE in text:
        assert without_fences("".join(contents)) == without_fences(text)
    else:
        assert "".join(contents) == text


@settings(max_examples=40, deadline=None)
@given(text=reply_texts)
def test_a_channel_reply_arrives_whole_in_parts_that_fit_and_pings_only_the_asker(wire, text):
    loop, fake, client, guild, channel = wire
    outbox = ChannelOutbox(client, client.user, in_server=True)
    key = ConversationKey("discord", str(channel))
    before = len(fake.calls)
    sent = loop.run_until_complete(outbox.send(key, Reply(text, reply_to="123456789012345678")))
    loop.run_until_complete(outbox.edit(sent, "@everyone <@123456789012345678> edited"))
    posts = [call for call in fake.calls[before:] if call.method == "POST"]
    [edit] = [call for call in fake.calls[before:] if call.method == "PATCH"]
    check_parts(text, [post.body["content"] for post in posts])
    first, *rest = posts
    assert first.body["allowed_mentions"] == {"parse": [], "replied_user": True}
    assert first.body["message_reference"]["message_id"] == 123456789012345678
    assert all(post.body["allowed_mentions"] == {"parse": []} for post in rest)
    assert all("message_reference" not in post.body for post in rest)
    assert edit.body["allowed_mentions"] == {"parse": []}


@settings(max_examples=25, deadline=None)
@given(text=reply_texts, private=st.booleans())
def test_a_slash_command_answer_arrives_whole_with_one_visibility_and_no_pings(wire, text, private):
    loop, fake, client, guild, channel = wire
    payload = fake.interaction(channel, 42, "help")
    interaction = discord.Interaction(data=payload, state=client._connection)  # as discord.py's own tests do
    outbox = InteractionOutbox(interaction, private=private)
    key = ConversationKey("discord", str(channel))
    before = len(fake.calls)
    loop.run_until_complete(outbox.send(key, Reply(text, private=private)))
    calls = fake.calls[before:]
    bodies = [call.body.get("data", call.body) for call in calls]  # the callback wraps its message in "data"
    check_parts(text, [body["content"] for body in bodies])
    assert all(body["allowed_mentions"] == {"parse": []} for body in bodies)
    assert {bool(body.get("flags", 0) & 64) for body in bodies} == {private}
