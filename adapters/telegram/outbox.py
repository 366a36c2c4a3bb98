"""The Telegram Outbox: core replies as Bot API calls.

* Text goes out as plain text (no ``parse_mode``): whatever the model writes, Telegram
  cannot fail to parse it, and the user sees exactly the generated characters.
* Length is measured in UTF-16 code units, as Telegram counts its 4096 limit; a reply
  longer than that is split on paragraph/sentence boundaries (core.text.split_text).
* ``Reply.private`` in a group goes to the user's private chat when the user has
  started the bot; otherwise it falls back to the group.
* ``Reply.attachment`` is sent with sendDocument.
* In private chats a streamed reply can use message drafts (sendMessageDraft): the
  growing text is shown as a draft and the finished text is sent as one real message
  by :meth:`TelegramOutbox.close`. A server that refuses drafts switches the whole
  adapter to edits.
* ``resume``: gives, at the first send, the message a killed process was streaming this
  reply into; that send edits it instead of sending a new one (adapters/telegram/journal.py).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Bot, InputFile, Message, ReplyParameters
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from core.errors import PlatformError
from core.events import Attachment, ConversationKey, Reply, SentMessage
from core.text import split_text, utf16_len

log = logging.getLogger(__name__)

PLATFORM = "telegram"
MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH  # 4096 UTF-16 code units
MAX_CAPTION = MessageLimit.CAPTION_LENGTH  # 1024
EMPTY_TEXT = "…"  # Telegram refuses empty messages
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DRAFT_PREFIX = "draft:"


def clean_text(text: str) -> str:
    """What Telegram accepts for any string: no lone surrogates, never empty."""
    text = _LONE_SURROGATE.sub("\ufffd", text)
    return text if text.strip() else EMPTY_TEXT


def _thread(key: ConversationKey) -> int | None:
    return int(key.thread_id) if key.thread_id else None


def _reply_parameters(reply_to: str | None) -> ReplyParameters | None:
    # allow_sending_without_reply: a deleted original must not lose the answer.
    return ReplyParameters(int(reply_to), allow_sending_without_reply=True) if reply_to else None


class DraftSupport:
    """Adapter-wide switch for message drafts, with draft ids unique within the process."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)


@dataclass
class _Draft:
    draft_id: int
    key: ConversationKey
    text: str
    reply_to: str | None
    message_id: str | None = None  # set once the draft became a real message


class TelegramOutbox:
    """One per incoming update (it knows the caller, for private replies in groups)."""

    max_message_length = MAX_TEXT
    markdown_fences = False

    def __init__(
        self,
        bot: Bot,
        *,
        interval: float | None,
        dm_user_id: str | None = None,
        drafts: DraftSupport | None = None,
        resume: Callable[[], tuple[str, str] | None] | None = None,
    ) -> None:
        self._bot = bot
        self._interval = interval
        self._dm_user_id = dm_user_id
        self._drafts_support = drafts
        self._drafts: dict[str, _Draft] = {}
        self._open_draft: _Draft | None = None
        self._resume = resume

    def measure(self, text: str) -> int:
        return utf16_len(text)

    def edit_interval(self) -> float | None:
        return self._interval

    # -- sending ---------------------------------------------------------------------
    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        text = clean_text(reply.text)
        resume = self._resume() if self._resume is not None else None
        self._resume = None
        if resume is not None and resume[0] == key.chat_id and reply.attachment is None and utf16_len(text) <= MAX_TEXT:
            try:
                await self._edit_message(key, resume[1], text)
                return SentMessage(key, resume[1])
            except PlatformError as error:  # deleted meanwhile: a new message then
                log.info("could not finish the interrupted reply in message %s: %s", resume[1], error)
        if reply.private and self._dm_user_id and key.chat_id != self._dm_user_id:
            dm = ConversationKey(PLATFORM, self._dm_user_id)
            try:
                message = await self._send_now(dm, text, None, reply.attachment)
                return SentMessage(dm, str(message.message_id))
            except (Forbidden, BadRequest) as error:  # the user never started the bot
                log.info("private reply to %s goes to the group: %s", self._dm_user_id, error)
            except TelegramError as error:
                raise _platform_error("send", error) from None
        if self._use_drafts() and reply.attachment is None:
            await self._commit_open_draft()
            draft = _Draft(self._drafts_support.next_id(), key, text, reply.reply_to)  # type: ignore[union-attr]
            self._drafts[f"{_DRAFT_PREFIX}{draft.draft_id}"] = draft
            self._open_draft = draft
            return SentMessage(key, f"{_DRAFT_PREFIX}{draft.draft_id}")
        await self._commit_open_draft()
        try:
            message = await self._send_now(key, text, reply.reply_to, reply.attachment)
        except TelegramError as error:
            raise _platform_error("send", error) from None
        return SentMessage(key, str(message.message_id))

    async def edit(self, sent: SentMessage, text: str) -> None:
        text = clean_text(text)
        draft = self._drafts.get(sent.message_id)
        if draft is None:
            await self._edit_message(sent.key, sent.message_id, text)
            return
        if draft.message_id is not None:
            await self._edit_message(draft.key, draft.message_id, text)
            return
        draft.text = text
        if not self._use_drafts():
            await self._commit(draft)
            return
        try:
            await self._bot.send_message_draft(
                int(draft.key.chat_id), draft.draft_id, text, message_thread_id=_thread(draft.key)
            )
        except RetryAfter as error:
            raise _platform_error("draft", error) from None
        except TelegramError as error:
            log.warning("message drafts refused (%s); streaming with edits from now on", error)
            self._drafts_support.enabled = False  # type: ignore[union-attr]
            await self._commit(draft)

    async def typing(self, key: ConversationKey) -> None:
        await self._bot.send_chat_action(int(key.chat_id), ChatAction.TYPING, message_thread_id=_thread(key))

    async def aclose(self) -> None:
        """Turn a draft still open into a real message: the streamed reply is complete."""
        await self._commit_open_draft()

    # -- internals -------------------------------------------------------------------
    def _use_drafts(self) -> bool:
        return self._drafts_support is not None and self._drafts_support.enabled

    async def _commit_open_draft(self) -> None:
        draft, self._open_draft = self._open_draft, None
        if draft is not None and draft.message_id is None:
            await self._commit(draft)

    async def _commit(self, draft: _Draft) -> None:
        try:
            message = await self._send_now(draft.key, draft.text, draft.reply_to, None)
        except TelegramError as error:
            raise _platform_error("send", error) from None
        draft.message_id = str(message.message_id)
        if self._open_draft is draft:
            self._open_draft = None

    async def _send_now(
        self, key: ConversationKey, text: str, reply_to: str | None, attachment: Attachment | None
    ) -> Message:
        chat_id, thread = int(key.chat_id), _thread(key)
        if attachment is not None and utf16_len(text) <= MAX_CAPTION:
            return await self._send_document(chat_id, thread, attachment, text, reply_to)
        message: Message | None = None
        parts = [part for part in split_text(text, MAX_TEXT, utf16_len) if part.strip()]  # Telegram refuses blank
        for index, part in enumerate(parts):
            message = await self._bot.send_message(
                chat_id,
                part,
                message_thread_id=thread,
                reply_parameters=_reply_parameters(reply_to) if index == 0 else None,
            )
        if attachment is not None:
            message = await self._send_document(chat_id, thread, attachment, None, None)
        assert message is not None
        return message

    async def _send_document(
        self, chat_id: int, thread: int | None, attachment: Attachment, caption: str | None, reply_to: str | None
    ) -> Message:
        return await self._bot.send_document(
            chat_id,
            InputFile(attachment.data, filename=attachment.filename),
            caption=caption,
            message_thread_id=thread,
            reply_parameters=_reply_parameters(reply_to),
        )

    async def _edit_message(self, key: ConversationKey, message_id: str, text: str) -> None:
        try:
            await self._bot.edit_message_text(text, chat_id=int(key.chat_id), message_id=int(message_id))
        except BadRequest as error:
            if "not modified" in str(error).lower():
                return  # the same text again: nothing to change on screen
            raise _platform_error("edit", error) from None
        except TelegramError as error:
            raise _platform_error("edit", error) from None


def _platform_error(action: str, error: TelegramError) -> PlatformError:
    return PlatformError(f"telegram {action} failed: {type(error).__name__}: {error}")
