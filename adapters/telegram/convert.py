"""Pure conversion of Telegram updates into core events (no I/O, no bot object needed).

Rules (docs/telegram.md has the user-facing version):

* only new messages count; edited messages, channel posts and other update kinds are
  ignored (the first answer stands);
* messages from bots, from a channel or an anonymous group admin (``sender_chat``)
  have no person behind them and are ignored;
* private chats are always addressed to the bot; in groups a message is addressed when
  it @mentions the bot, replies to one of the bot's messages, or comes from a chat in
  ``reply_all_chats``; commands are parsed with the bot's username so ``/cmd@otherbot``
  is ignored;
* media without text gets a one-line notice in private chats and silence in groups;
* forum topics are separate conversations: the thread id goes into the ConversationKey.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType

from core.commands import parse_command_text
from core.events import ChatKind, CommandCall, ConversationKey, IncomingMessage, UserRef
from core.media import IMAGE_TEXT, NOT_UNDERSTOOD
from core.i18n import N_

PLATFORM = "telegram"
TEXT_ONLY_NOTICE = N_("I read text only. Please send me your message as text.")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, from getMe."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """An update the bot does not process; ``notice`` (a msgid) is what to tell the sender, if anything."""

    reason: str
    notice: str | None = None
    event_id: str | None = None
    user: UserRef | None = None
    chat_id: int | None = None
    locale: str | None = None  # the sender's language_code, for the notice


def event_id_for(update_id: int, bot_id: int) -> str:
    """Update ids are per bot, so the bot id keeps two bots sharing a database apart."""
    return f"{PLATFORM}:update:{bot_id}:{update_id}"


def parse_conversation_key(qualified: str) -> ConversationKey:
    """Inverse of ``ConversationKey.qualified`` for Telegram keys (``telegram:-100/7``)."""
    platform, _, rest = qualified.partition(":")
    chat_id, _, thread_id = rest.partition("/")
    if platform != PLATFORM or not chat_id.lstrip("-").isdigit():
        raise ValueError(f"not a Telegram conversation key: {qualified!r}")
    return ConversationKey(PLATFORM, chat_id, thread_id or None)


def chat_kind_of(chat_id: int | str) -> ChatKind:
    """Telegram gives private chats positive ids and groups negative ones."""
    return ChatKind.PRIVATE if int(chat_id) > 0 else ChatKind.GROUP


def _index(text: str, utf16_offset: int) -> int:
    """Python index of a UTF-16 offset (Telegram counts entity offsets in UTF-16 units)."""
    return len(text.encode("utf-16-le", "surrogatepass")[: 2 * utf16_offset].decode("utf-16-le", "surrogatepass"))


def _addressed_text(message: Message, me: BotIdentity) -> tuple[str, bool]:
    """The text without @mentions of the bot, and whether the bot was mentioned."""
    text = message.text or ""
    ours = [
        entity
        for entity in message.entities
        if (entity.type == MessageEntity.MENTION and message.parse_entity(entity)[1:].lower() == me.username.lower())
        or (entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == me.id)
    ]
    if not ours:
        return text, False
    kept, cursor = [], 0
    for entity in sorted(ours, key=lambda entity: entity.offset):
        if entity.type == MessageEntity.TEXT_MENTION:
            continue  # the bot's name written inside the sentence: keep the words
        start, end = _index(text, entity.offset), _index(text, entity.offset + entity.length)
        kept.append(text[cursor:start])
        cursor = end
    kept.append(text[cursor:])
    joined = kept[0]
    for piece in kept[1:]:
        joined = joined.rstrip(" ") + " " + piece.lstrip(" ")
    return joined.strip(), True


def _replies_to_bot(message: Message, me: BotIdentity) -> bool:
    original = message.reply_to_message
    if original is None or original.from_user is None or original.from_user.id != me.id:
        return False
    # In forum topics every message "replies" to the topic's creation message.
    return original.forum_topic_created is None


def _command_for_us(text: str, me: BotIdentity, aliases: Mapping[str, str]) -> CommandCall | None | bool:
    """The command, None for ordinary text, False for a command addressed to another bot."""
    if not text.startswith("/"):
        return None
    call = parse_command_text(text, me.username)
    if call is None:
        head = text[1:].split(maxsplit=1)[0] if len(text) > 1 else ""
        return False if "@" in head else None
    name = aliases.get(call.name, call.name)
    return CommandCall(name, call.args) if name != call.name else call


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def image_attachment(message: Message) -> tuple[str, int | None] | None:
    """The file id and announced size of the message's image: the largest photo size, or a
    document sent as an image (by MIME type or name; the bytes are checked once fetched)."""
    if message.photo:
        largest = message.photo[-1]
        return largest.file_id, largest.file_size
    document = message.document
    if document is not None and (
        (document.mime_type or "").startswith("image/") or (document.file_name or "").lower().endswith(IMAGE_SUFFIXES)
    ):
        return document.file_id, document.file_size
    return None


def _image_event(
    message: Message, me: BotIdentity, event_id: str, user: UserRef, private: bool, reply_all_chats: Collection[str],
    vision: bool,
) -> IncomingMessage:
    caption = message.caption or ""
    handle = f"@{me.username}".lower()
    mentioned = handle in caption.lower()
    if mentioned:
        start = caption.lower().index(handle)
        caption = (caption[:start] + caption[start + len(handle):]).strip()
    sender = message.from_user
    assert sender is not None
    thread = str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else None
    return IncomingMessage(
        event_id=event_id,
        key=ConversationKey(PLATFORM, str(message.chat.id), thread),
        user=user,
        text=caption or IMAGE_TEXT,
        chat_kind=ChatKind.PRIVATE if private else ChatKind.GROUP,
        message_id=str(message.message_id),
        user_display_name=sender.full_name,
        addressed_to_bot=private or mentioned or _replies_to_bot(message, me) or str(message.chat.id) in reply_all_chats,
        media_notice="" if vision else NOT_UNDERSTOOD,
        locale=sender.language_code,
    )


def update_to_event(
    update: Update,
    me: BotIdentity,
    *,
    reply_all_chats: Collection[str] = (),
    command_aliases: Mapping[str, str] | None = None,
    vision: bool = False,
) -> IncomingMessage | Ignored:
    """Convert one update; ``command_aliases`` maps Telegram command names to core ones.

    A photo or image document becomes a message with its caption as text; with ``vision``
    the adapter then fetches the image (:func:`image_attachment` names the file), without
    it the caption is answered with a short notice (no caption: the text-only notice)."""
    event_id = event_id_for(update.update_id, me.id)
    if update.edited_message is not None:
        return Ignored("edited message", event_id=event_id)
    message = update.message
    if message is None:
        return Ignored("not a new message" if update.channel_post is None else "channel post", event_id=event_id)
    chat, sender = message.chat, message.from_user
    if chat.type == ChatType.CHANNEL:
        return Ignored("channel post", event_id=event_id)
    if sender is None or message.sender_chat is not None:
        return Ignored("sent on behalf of a chat (channel or anonymous admin)", event_id=event_id)
    if sender.is_bot:
        return Ignored("message from a bot", event_id=event_id)
    private = chat.type == ChatType.PRIVATE
    user = UserRef(PLATFORM, str(sender.id))
    if message.text is None and image_attachment(message) is not None and (vision or message.caption):
        return _image_event(message, me, event_id, user, private, reply_all_chats, vision)
    if message.text is None:
        media = message.effective_attachment is not None
        notice = TEXT_ONLY_NOTICE if private and media else None
        return Ignored("not a text message", notice=notice, event_id=event_id, user=user, chat_id=chat.id, locale=sender.language_code)

    command = _command_for_us(message.text, me, command_aliases or {})
    if command is False:
        return Ignored("command for another bot", event_id=event_id)
    text, mentioned = _addressed_text(message, me)
    addressed = (
        private
        or command is not None
        or mentioned
        or _replies_to_bot(message, me)
        or str(chat.id) in reply_all_chats
    )
    thread = str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else None
    return IncomingMessage(
        event_id=event_id,
        key=ConversationKey(PLATFORM, str(chat.id), thread),
        user=user,
        text=message.text if command is not None else text,
        chat_kind=ChatKind.PRIVATE if private else ChatKind.GROUP,
        command=command or None,
        message_id=str(message.message_id),
        user_display_name=sender.full_name,
        addressed_to_bot=addressed,
        locale=sender.language_code,
    )
