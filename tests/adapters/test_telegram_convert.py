"""Update -> IncomingMessage, as pure functions over real Bot API payloads."""

from __future__ import annotations

import pytest
from telegram import Update

from adapters.telegram.commands import admin_chat_ids, admin_menu, command_aliases, user_menu
from adapters.telegram.convert import (
    TEXT_ONLY_NOTICE,
    BotIdentity,
    Ignored,
    parse_conversation_key,
    update_to_event,
)
from core.commands import CommandRegistry, CommandSpec
from core.events import ChatKind, CommandCall, ConversationKey, IncomingMessage, UserRef
from tests.adapters.telegram_fake_server import BOT_ID, BOT_USERNAME, FakeBotAPI

ME = BotIdentity(BOT_ID, BOT_USERNAME)
GROUP = -1001234


def convert(fake: FakeBotAPI, **options) -> IncomingMessage | Ignored:
    return update_to_event(Update.de_json(fake.updates[-1], None), ME, **options)


def message(text: str | None, **kwargs) -> IncomingMessage | Ignored:
    fake = FakeBotAPI()
    fake.user_message(text, **kwargs)
    return convert(fake)


def bot_message(chat_id: int, message_id: int = 77) -> dict:
    return {
        "message_id": message_id,
        "date": 0,
        "chat": {"id": chat_id, "type": "supergroup", "title": "g"},
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "Persona", "username": BOT_USERNAME},
        "text": "earlier answer",
    }


def test_a_private_message_becomes_an_addressed_event_with_telegram_identities():
    event = message("你好 bot 👋", chat_id=555, first_name="李雷")
    assert isinstance(event, IncomingMessage)
    assert event.key == ConversationKey("telegram", "555")
    assert event.user == UserRef("telegram", "555")
    assert event.text == "你好 bot 👋"
    assert event.chat_kind is ChatKind.PRIVATE
    assert event.addressed_to_bot and event.command is None
    assert event.user_display_name == "李雷"
    assert event.message_id == "1"


def test_event_ids_come_from_update_ids_and_are_stable():
    fake = FakeBotAPI()
    update_id = fake.user_message("hi")
    first, again = convert(fake), convert(fake)
    assert first.event_id == again.event_id == f"telegram:update:{BOT_ID}:{update_id}"


def test_a_group_message_without_mention_is_not_addressed():
    event = message("just chatting", chat_id=GROUP, user_id=7)
    assert isinstance(event, IncomingMessage)
    assert event.chat_kind is ChatKind.GROUP and not event.addressed_to_bot
    assert event.user == UserRef("telegram", "7")


def test_a_mention_addresses_the_bot_and_is_removed_from_the_text():
    event = message(f"@{BOT_USERNAME.upper()} 今天天气怎么样？", chat_id=GROUP, user_id=7)
    assert event.addressed_to_bot
    assert event.text == "今天天气怎么样？"


def test_a_mention_after_astral_characters_uses_utf16_offsets():
    event = message(f"𝕳𝖊𝖑𝖑𝖔 😀 @{BOT_USERNAME} what's up", chat_id=GROUP, user_id=7)
    assert event.addressed_to_bot
    assert event.text == "𝕳𝖊𝖑𝖑𝖔 😀 what's up"


def test_a_mention_of_another_user_does_not_address_the_bot():
    event = message("@someone_else hello", chat_id=GROUP, user_id=7)
    assert not event.addressed_to_bot
    assert event.text == "@someone_else hello"


def test_a_reply_to_the_bot_addresses_it_and_a_reply_to_someone_else_does_not():
    to_bot = message("and then?", chat_id=GROUP, user_id=7, reply_to=bot_message(GROUP))
    other = dict(bot_message(GROUP), **{"from": {"id": 8, "is_bot": False, "first_name": "B"}})
    to_other = message("and then?", chat_id=GROUP, user_id=7, reply_to=other)
    assert to_bot.addressed_to_bot
    assert not to_other.addressed_to_bot


def test_listed_chats_are_answered_without_mention():
    fake = FakeBotAPI()
    fake.user_message("anyone?", chat_id=GROUP, user_id=7)
    assert convert(fake, reply_all_chats={str(GROUP)}).addressed_to_bot
    assert not convert(fake, reply_all_chats={"-1"}).addressed_to_bot


def test_forum_topics_are_separate_conversations():
    in_topic = message("hello", chat_id=GROUP, user_id=7, thread_id=42)
    general = message("hello", chat_id=GROUP, user_id=7)
    assert in_topic.key == ConversationKey("telegram", str(GROUP), "42")
    assert general.key == ConversationKey("telegram", str(GROUP))
    assert not in_topic.addressed_to_bot  # the topic's root message is not a reply to the bot


def test_commands_are_parsed_with_the_bot_username():
    ours = message(f"/persona@{BOT_USERNAME} tutor", chat_id=GROUP, user_id=7)
    bare = message("/help", chat_id=GROUP, user_id=7)
    assert ours.command == CommandCall("persona", ("tutor",)) and ours.addressed_to_bot
    assert bare.command == CommandCall("help")
    other = message("/help@other_bot", chat_id=GROUP, user_id=7)
    assert isinstance(other, Ignored) and other.notice is None


def test_command_aliases_map_telegram_names_back_to_core_names():
    fake = FakeBotAPI()
    fake.user_message("/persona_default tutor")
    event = convert(fake, command_aliases={"persona_default": "persona-default"})
    assert event.command == CommandCall("persona-default", ("tutor",))


@pytest.mark.parametrize(
    ("extra", "chat_id", "notice"),
    [
        ({"photo": [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]}, 555, TEXT_ONLY_NOTICE),
        ({"sticker": {"file_id": "s", "file_unique_id": "u", "width": 1, "height": 1, "is_animated": False,
                      "is_video": False, "type": "regular"}}, 555, TEXT_ONLY_NOTICE),
        ({"voice": {"file_id": "v", "file_unique_id": "u", "duration": 1}}, 555, TEXT_ONLY_NOTICE),
        ({"document": {"file_id": "d", "file_unique_id": "u"}, "caption": "see this"}, 555, TEXT_ONLY_NOTICE),
        ({"voice": {"file_id": "v", "file_unique_id": "u", "duration": 1}}, GROUP, None),
        ({"new_chat_members": [{"id": 9, "is_bot": False, "first_name": "N"}]}, GROUP, None),
    ],
)
def test_media_gets_a_notice_in_private_chats_and_silence_in_groups(extra, chat_id, notice):
    ignored = message(None, chat_id=chat_id, user_id=7, extra=extra)
    assert isinstance(ignored, Ignored)
    assert ignored.notice == notice


def test_bots_channels_anonymous_admins_and_edits_are_ignored():
    from_bot = message("beep", chat_id=GROUP, user_id=8, is_bot=True)
    anonymous = message(
        f"@{BOT_USERNAME} hi",
        chat_id=GROUP,
        user_id=1087968824,
        first_name="Group",
        extra={"sender_chat": {"id": GROUP, "type": "supergroup", "title": "g"}},
    )
    fake = FakeBotAPI()
    fake.user_message("fixed typo", kind="edited_message")
    edited = convert(fake)
    fake.user_message("news", chat_id=-100777, kind="channel_post", extra={"chat": {"id": -100777, "type": "channel"}})
    channel = convert(fake)
    for ignored in (from_bot, anonymous, edited, channel):
        assert isinstance(ignored, Ignored) and ignored.notice is None


def test_conversation_keys_round_trip():
    for key in (ConversationKey("telegram", "555"), ConversationKey("telegram", "-100123", "7")):
        assert parse_conversation_key(key.qualified) == key
    with pytest.raises(ValueError):
        parse_conversation_key("discord:1")


async def _noop(ctx, args):
    return None


def test_command_menus_use_telegram_names_and_admin_only_in_admin_chats():
    registry = CommandRegistry()
    registry.extend(
        [
            CommandSpec("help", "List the commands", _noop),
            CommandSpec("my-topics", "Topics", _noop),
            CommandSpec("ban", "Ban a user", _noop, admin_only=True),
        ]
    )
    assert [c.command for c in user_menu(registry)] == ["help", "my_topics"]
    admin = admin_menu(registry)
    assert [c.command for c in admin] == ["help", "my_topics", "admin"]
    assert "ban" in admin[-1].description
    assert command_aliases(registry) == {"my_topics": "my-topics"}
    assert admin_chat_ids(["telegram:5", "discord:6", "telegram:abc", "console:x"]) == [5]
