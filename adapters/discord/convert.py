"""Pure conversions: discord.py objects in, core events out. No I/O here.

Identities are ``discord:<snowflake>``. A conversation is keyed by the channel and,
inside a thread, by the thread: ``ConversationKey("discord", channel_id, thread_id)``,
so each thread keeps its own history while the channel's settings (persona, listed
channels) still apply to it.
"""

from __future__ import annotations

from collections.abc import Collection

import discord

from core.events import ChatKind, CommandCall, ConversationKey, IncomingMessage, UserRef
from core.media import IMAGE_TEXT, NOT_UNDERSTOOD

PLATFORM = "discord"

# Message types a person writes; joins, pins, thread starters and the like are ignored.
_CHAT_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def conversation_key(channel: object, channel_id: int) -> ConversationKey:
    """Threads are conversations of their own inside their parent channel."""
    if isinstance(channel, discord.Thread):
        return ConversationKey(PLATFORM, str(channel.parent_id), str(channel.id))
    return ConversationKey(PLATFORM, str(channel_id))


def role_ids(user: discord.abc.User | None) -> tuple[str, ...]:
    """Role ids of a server member, without @everyone (its id is the server's)."""
    if not isinstance(user, discord.Member):
        return ()
    return tuple(str(role.id) for role in user.roles if not role.is_default())


def is_nsfw(channel: object) -> bool:
    check = getattr(channel, "is_nsfw", None)
    return bool(check()) if callable(check) else False


def _bot_display_name(message: discord.Message, bot_id: int) -> str | None:
    """The name ``clean_content`` shows for the bot's own mention (a nick in servers)."""
    member = message.guild.get_member(bot_id) if message.guild else None
    member = member or discord.utils.get(message.mentions, id=bot_id)
    return member.display_name if member else None


def message_text(message: discord.Message, bot_id: int) -> str:
    """What the person wrote, as Discord shows it, without the mention of the bot.

    Other mentions become ``@name``/``#channel`` (``Message.clean_content``), so the
    model reads names instead of snowflakes.
    """
    text = message.clean_content
    name = _bot_display_name(message, bot_id)
    if name:
        text = text.replace(f"@{name}", "")
    return text.strip()


def is_reply_to(message: discord.Message, bot_id: int) -> bool:
    reference = message.reference
    resolved = reference.resolved if reference else None
    return isinstance(resolved, discord.Message) and resolved.author.id == bot_id


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def image_attachment(message: discord.Message) -> discord.Attachment | None:
    """The message's first attachment that says it is an image (type or name; the bytes are checked once fetched)."""
    for attachment in message.attachments:
        if (attachment.content_type or "").startswith("image/") or attachment.filename.lower().endswith(IMAGE_SUFFIXES):
            return attachment
    return None


def message_event(
    message: discord.Message, bot_id: int, channels: Collection[str] = (), *, vision: bool = False,
    bots: Collection[str] = (),
) -> IncomingMessage | None:
    """A gateway message as a core event, or None when the bot must stay silent.

    Silent for bots (itself included; ``bots`` lists the qualified ids of those let through,
    marked ``from_bot``), webhooks, system messages, server messages not
    addressed to the bot, and server messages with no text (only an attachment, a
    sticker or an embed). In DMs every message is addressed; an empty one reaches the
    core, which answers with a one-line notice. An image attachment counts as text for a
    ``vision`` bot (the adapter fetches it); otherwise its message text is answered with a
    short notice that images are not read.
    """
    author = message.author
    listed_bot = author.bot and f"{PLATFORM}:{author.id}" in bots
    if (author.bot and not listed_bot) or author.id == bot_id or message.webhook_id is not None or message.type not in _CHAT_TYPES:
        return None
    channel = message.channel
    key = conversation_key(channel, message.channel.id)
    text = message_text(message, bot_id)
    image = image_attachment(message)
    notice = NOT_UNDERSTOOD if image is not None and not vision and text else ""
    if image is not None and vision and not text:
        text = IMAGE_TEXT
    if message.guild is None:
        kind, addressed, space = ChatKind.PRIVATE, True, None
    else:
        mentioned = any(user.id == bot_id for user in message.mentions)
        addressed = mentioned or is_reply_to(message, bot_id) or key.chat_id in channels
        if not addressed or not text:
            return None
        kind, space = ChatKind.GROUP, str(message.guild.id)
    return IncomingMessage(
        event_id=f"{PLATFORM}:message:{message.id}",
        key=key,
        user=UserRef(PLATFORM, str(author.id)),
        text=text,
        chat_kind=kind,
        message_id=str(message.id),
        user_display_name=author.display_name,
        addressed_to_bot=addressed,
        space_id=space,
        user_roles=role_ids(author),
        nsfw=is_nsfw(channel),
        from_bot=listed_bot,
        media_notice=notice,
    )


def interaction_event(interaction: discord.Interaction, call: CommandCall) -> IncomingMessage:
    """A slash command invocation as a core command event."""
    user = interaction.user
    channel = interaction.channel
    channel_id = interaction.channel_id if interaction.channel_id is not None else user.id
    text = " ".join(("/" + call.name,) + call.args)
    return IncomingMessage(
        event_id=f"{PLATFORM}:interaction:{interaction.id}",
        key=conversation_key(channel, channel_id),
        user=UserRef(PLATFORM, str(user.id)),
        text=text,
        chat_kind=ChatKind.PRIVATE if interaction.guild_id is None else ChatKind.GROUP,
        command=call,
        user_display_name=user.display_name,
        addressed_to_bot=True,
        space_id=str(interaction.guild_id) if interaction.guild_id is not None else None,
        user_roles=role_ids(user),
        nsfw=is_nsfw(channel),
        locale=str(getattr(interaction.locale, "value", interaction.locale) or "") or None,
    )
