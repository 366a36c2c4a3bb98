"""Message flows through the wire: discord.py against a REST + gateway fake on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.errors import ConfigError
from core.events import ChatKind, ConversationKey
from core.text import FENCE, utf16_len
from tests.adapters.discord_fake_server import SEND_MESSAGES, FakeDiscord
from tests.adapters.discord_harness import USER_ID, capture, running_bot

REPLY = "Hello there, friend!"


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


def mention(fake: FakeDiscord, channel: int, text: str, **kwargs):
    return fake.message(channel, USER_ID, f"<@{fake.bot_id}> {text}", mentions_bot=True, **kwargs)


async def history(app, key: ConversationKey) -> list[tuple[str, str]]:
    conversation = await app.store.active_conversation(key)
    return [(message.role, message.text) for message in await app.store.history(conversation.id)]


async def test_a_mention_in_a_server_is_answered_as_a_reply_that_pings_nobody_else(fake, monkeypatch):
    guild = fake.add_guild()
    role = fake.add_role(guild, "helpers")
    channel = fake.add_channel(guild, nsfw=True)
    events = []
    async with running_bot(fake, monkeypatch, features=[capture(events)]) as bot:
        sent = mention(fake, channel, f"hello 你好 @everyone <@&{role}> 👋", roles=(role,))
        await fake.dispatch("MESSAGE_CREATE", sent)
        await fake.wait_for(lambda: fake.texts_in(channel) == [REPLY])
        event = events[0]
        assert (event.key, event.user.qualified, event.space_id) == (
            ConversationKey("discord", str(channel)),
            f"discord:{USER_ID}",
            str(guild),
        )
        assert (event.chat_kind, event.addressed_to_bot, event.nsfw) == (ChatKind.GROUP, True, True)
        assert event.user_roles == (str(role),)
        assert event.event_id == f"discord:message:{sent['id']}" and event.message_id == sent["id"]
        assert await history(bot.app, event.key) == [
            ("user", "hello 你好 @everyone @helpers 👋"),
            ("assistant", REPLY),
        ]
    [answer] = fake.messages_in(channel)
    assert answer["message_reference"]["message_id"] == int(sent["id"])
    assert answer["allowed_mentions"] == {"parse": [], "replied_user": True}
    for call in fake.calls_to("PATCH", r"channels/\d+/messages/\d+"):
        assert call.body["allowed_mentions"] == {"parse": []}


async def test_server_messages_not_addressed_to_the_bot_are_ignored(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch) as bot:
        await fake.dispatch("MESSAGE_CREATE", fake.message(channel, USER_ID, "just chatting"))
        other_bot = fake.message(channel, 5, f"<@{fake.bot_id}> beep", bot=True, mentions_bot=True)
        await fake.dispatch("MESSAGE_CREATE", other_bot)
        itself = fake.message(channel, fake.bot_id, f"<@{fake.bot_id}> me", bot=True, mentions_bot=True)
        await fake.dispatch("MESSAGE_CREATE", itself)
        attachment_only = mention(fake, channel, "", attachments=1)
        await fake.dispatch("MESSAGE_CREATE", attachment_only)
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "now you"))
        await fake.wait_for(lambda: fake.texts_in(channel) == [REPLY])
        assert [request.messages[-1].content for request in bot.generator.requests] == ["now you"]


async def test_a_reply_to_the_bot_is_answered_without_a_mention(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, replies=["first", "second"]):
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "hi"))
        await fake.wait_for(lambda: fake.texts_in(channel) == ["first"])
        bot_message = FakeDiscord._public(fake.messages_in(channel)[0])
        await fake.dispatch("MESSAGE_CREATE", fake.message(channel, USER_ID, "and then?", reply_to=bot_message))
        await fake.wait_for(lambda: fake.texts_in(channel) == ["first", "second"])


async def test_listed_channels_and_their_threads_answer_everything_in_separate_conversations(fake, monkeypatch):
    guild = fake.add_guild()
    listed = fake.add_channel(guild)
    thread = fake.add_thread(guild, listed)
    unlisted = fake.add_channel(guild)
    unlisted_thread = fake.add_thread(guild, unlisted)
    events = []
    async with running_bot(fake, monkeypatch, features=[capture(events)], channels=[str(listed)]) as bot:
        await fake.dispatch("MESSAGE_CREATE", fake.message(unlisted, USER_ID, "not here"))
        await fake.dispatch("MESSAGE_CREATE", fake.message(unlisted_thread, USER_ID, "nor here"))
        await fake.dispatch("MESSAGE_CREATE", fake.message(listed, USER_ID, "in the channel"))
        await fake.dispatch("MESSAGE_CREATE", fake.message(thread, USER_ID, "in the thread"))
        await fake.wait_for(lambda: fake.texts_in(listed) == [REPLY] and fake.texts_in(thread) == [REPLY])
        keys = [event.key for event in events]
        assert keys == [ConversationKey("discord", str(listed)), ConversationKey("discord", str(listed), str(thread))]
        assert await history(bot.app, keys[0]) == [("user", "in the channel"), ("assistant", REPLY)]
        assert await history(bot.app, keys[1]) == [("user", "in the thread"), ("assistant", REPLY)]
    assert fake.texts_in(unlisted) == [] and fake.texts_in(unlisted_thread) == []


async def test_direct_messages_are_all_answered_and_one_without_text_gets_a_notice(fake, monkeypatch):
    dm_channel = 555000000000000001
    events = []
    async with running_bot(fake, monkeypatch, features=[capture(events)]):
        await fake.dispatch("MESSAGE_CREATE", fake.message(dm_channel, USER_ID, "salut, ça va ?"))
        await fake.wait_for(lambda: fake.texts_in(dm_channel) == [REPLY])
        await fake.dispatch("MESSAGE_CREATE", fake.message(dm_channel, USER_ID, "", attachments=1))
        await fake.wait_for(lambda: len(fake.texts_in(dm_channel)) == 2)
    assert fake.texts_in(dm_channel)[1] == "Please send me some text."
    assert all(message["message_reference"] is None for message in fake.messages_in(dm_channel))
    assert (events[0].chat_kind, events[0].space_id, events[0].key) == (
        ChatKind.PRIVATE,
        None,
        ConversationKey("discord", str(dm_channel)),
    )


async def test_a_streamed_reply_is_edited_and_the_last_edit_carries_all_of_it(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    reply = " ".join(f"word{n}" for n in range(40))
    async with running_bot(fake, monkeypatch, replies=[reply]) as bot:
        bot.generator.chunk_delay = 0.002
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "tell me"))
        await fake.wait_for(lambda: bot.generator.requests)
    # leaving the block stops the bot, which lets the reply in progress finish first
    edits = fake.calls_to("PATCH", rf"channels/{channel}/messages/\d+")
    assert edits, "a streamed reply is shown while it grows"
    assert fake.texts_in(channel) == [reply]
    assert edits[-1].body["content"] == reply
    assert fake.calls_to("POST", rf"channels/{channel}/typing")


async def test_without_streaming_the_reply_is_sent_once_complete(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    reply = " ".join(f"word{n}" for n in range(40))
    async with running_bot(fake, monkeypatch, replies=[reply], stream=False):
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "tell me"))
        await fake.wait_for(lambda: fake.texts_in(channel) == [reply])
    assert fake.calls_to("PATCH", rf"channels/{channel}/messages/\d+") == []


async def test_a_long_reply_is_split_under_2000_without_losing_text_or_breaking_a_code_block(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    code = "\n".join(f"print('行 {n}: {'x' * 40}')" for n in range(80))
    reply = "下面是代码：\n\n```python\n" + code + "\n```\n\nDone! 😀 " + "fin " * 300
    async with running_bot(fake, monkeypatch, replies=[reply], max_new_tokens=1500) as bot:
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "code please"))
        await fake.wait_for(lambda: bot.generator.requests)
    parts = fake.texts_in(channel)
    assert all(utf16_len(part) <= 2000 for part in parts)
    assert all(part.count(FENCE) % 2 == 0 for part in parts)

    def without_fences(text: str) -> str:  # the split may close and reopen the block
        return text.replace(FENCE + "python", "").replace(FENCE, "").replace("\n", "")

    assert without_fences("".join(parts)) == without_fences(reply.strip())


async def test_a_message_redelivered_after_a_resume_is_answered_once(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, replies=["one", "two", "three"]) as bot:
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "first"))
        await fake.wait_for(lambda: fake.texts_in(channel) == ["one"])
        fake.replay_on_resume = 1  # Discord re-sends the last event after the reconnect
        await fake.drop_connection()
        await fake.wait_for(lambda: fake.resumes == 1 and fake.identified.is_set())
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "second"))
        await fake.wait_for(lambda: fake.texts_in(channel) == ["one", "two"])
        assert fake.identifies == 1  # resumed, not a new session
        assert [request.messages[-1].content for request in bot.generator.requests] == ["first", "second"]


async def test_a_429_is_waited_out_once_and_counted(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, stream=False) as bot:
        fake.fail_next("POST", rf"channels/{channel}/messages", 429, retry_after=0.05)
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "hi"))
        await fake.wait_for(lambda: fake.texts_in(channel) == [REPLY])
        assert bot.bot.rate_limit_hits == 1
    assert len(fake.calls_to("POST", rf"channels/{channel}/messages")) == 2


async def test_every_attempt_of_a_message_call_takes_a_slot_of_the_budget_retries_included(fake, monkeypatch):
    """discord.py retries a 429 or 5xx itself; the retry must count in the channel's 5 per 5 s."""
    from adapters.discord.outbox import Pacer

    class Recording(Pacer):
        def __init__(self) -> None:
            super().__init__(per_channel=1000, overall=10_000, quiet_start=False)
            self.slots: list[int] = []

        async def slot(self, channel_id: int) -> None:
            self.slots.append(channel_id)
            await super().slot(channel_id)

    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, stream=False) as bot:
        bot.bot.pacer = recording = Recording()
        fake.fail_next("POST", rf"channels/{channel}/messages", 500)
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "hi"))
        await fake.wait_for(lambda: fake.texts_in(channel) == [REPLY])
    assert len(fake.calls_to("POST", rf"channels/{channel}/messages")) == 2
    assert recording.slots == [channel, channel]  # the first try and discord.py's retry


async def test_a_channel_the_bot_may_not_write_in_costs_no_model_call_and_one_log_line(fake, monkeypatch, caplog):
    guild = fake.add_guild()
    muted = fake.add_channel(guild, deny_everyone=SEND_MESSAGES)
    open_channel = fake.add_channel(guild)
    caplog.set_level(logging.WARNING, logger="adapters.discord")
    async with running_bot(fake, monkeypatch) as bot:
        await fake.dispatch("MESSAGE_CREATE", mention(fake, muted, "hello?"))
        await fake.dispatch("MESSAGE_CREATE", mention(fake, muted, "anyone?"))
        await fake.dispatch("MESSAGE_CREATE", mention(fake, open_channel, "hi"))
        await fake.wait_for(lambda: fake.texts_in(open_channel) == [REPLY])
        assert len(bot.generator.requests) == 1
    assert [call for call in fake.calls if f"channels/{muted}" in call.path] == []
    assert [r.getMessage() for r in caplog.records].count(
        f"discord: no permission to send in channel {muted}; ignoring messages there"
    ) == 1


async def test_a_send_refused_by_discord_is_logged_without_a_retry_storm(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, stream=False):
        fake.fail_next("POST", rf"channels/{channel}/messages", 403, code=50013, times=10)
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "hi"))
        # the error hook tells the user privately why there is no answer
        await fake.wait_for(lambda: len(fake.messages) == 1)
    assert len(fake.calls_to("POST", rf"channels/{channel}/messages")) == 1
    [notice] = fake.messages.values()
    assert notice["content"] == "The chat platform did not accept my message."


async def test_a_rate_limited_user_is_told_in_a_dm_not_in_the_channel(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    limits = {"user_messages_per_minute": 1, "user_burst": 1}
    async with running_bot(fake, monkeypatch, limits=limits, stream=False):
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "one"))
        await fake.wait_for(lambda: fake.texts_in(channel) == [REPLY])
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "two"))
        await fake.wait_for(lambda: fake.calls_to("POST", r"users/@me/channels"))
        dm = fake.calls_to("POST", r"users/@me/channels")[0].body["recipient_id"]
        await fake.wait_for(lambda: len(fake.messages) == 2)
    assert str(dm) == str(USER_ID)
    notice = [m for m in fake.messages.values() if m["channel_id"] != str(channel)]
    assert "too fast" in notice[0]["content"]
    assert fake.texts_in(channel) == [REPLY]


async def test_edited_and_deleted_messages_get_no_new_answer(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, replies=["one", "two"]):
        original = mention(fake, channel, "first")
        await fake.dispatch("MESSAGE_CREATE", original)
        await fake.wait_for(lambda: fake.texts_in(channel) == ["one"])
        edited = dict(original, content=f"<@{fake.bot_id}> first, edited", edited_timestamp="2025-01-01T00:01:00+00:00")
        await fake.dispatch("MESSAGE_UPDATE", edited)
        await fake.dispatch("MESSAGE_DELETE", {"id": original["id"], "channel_id": str(channel), "guild_id": str(guild)})
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "second"))
        await fake.wait_for(lambda: fake.texts_in(channel) == ["one", "two"])


async def test_stop_lets_a_reply_in_progress_finish_then_returns(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    hold = asyncio.Event()
    async with running_bot(fake, monkeypatch, stream=False) as bot:
        bot.generator.hold = hold
        await fake.dispatch("MESSAGE_CREATE", mention(fake, channel, "slow one"))
        await fake.wait_for(lambda: bot.generator.requests)
        bot.stop.set()
        hold.set()
        await asyncio.wait_for(bot.task, 10)
    assert fake.texts_in(channel) == [REPLY]


async def test_a_wrong_token_is_a_clear_config_error_that_never_shows_the_token(fake, monkeypatch):
    with pytest.raises(ConfigError) as caught:
        async with running_bot(fake, monkeypatch, token="not-the-token"):
            pass
    assert "DISCORD_BOT_TOKEN" in str(caught.value) and "not-the-token" not in str(caught.value)


async def test_a_missing_token_variable_is_a_config_error(fake, monkeypatch):
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        async with running_bot(fake, monkeypatch, token=""):
            pass


async def test_a_missing_message_content_intent_says_how_to_enable_it(fake, monkeypatch):
    fake.close_on_identify = 4014
    with pytest.raises(ConfigError, match="Message Content Intent"):
        async with running_bot(fake, monkeypatch):
            pass
    assert fake.identify_payloads[0]["intents"] & (1 << 15), "the bot asks for the message content intent"
