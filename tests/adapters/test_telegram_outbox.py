"""TelegramOutbox properties (hypothesis): any text arrives whole, within 4096 UTF-16
units per message, as plain text Telegram cannot fail to parse; streamed replies end
with exactly the generated text on screen, with drafts or with edits."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace

from hypothesis import example, given, settings
from hypothesis import strategies as st
from telegram.error import BadRequest, Forbidden

from adapters.telegram.outbox import EMPTY_TEXT, DraftSupport, TelegramOutbox, clean_text
from core.events import Chunk, ConversationKey, FinishReason, Reply
from core.streaming import ReplyStreamer
from core.text import utf16_len

KEY = ConversationKey("telegram", "555")
GROUP_KEY = ConversationKey("telegram", "-1001", "9")
# Markup that would break a parse_mode, characters Telegram counts twice, a lone surrogate.
SPECIAL = ["<b>", "</i>", "&amp;", "&", "*bold*", "_x_", "[a](b)", "`", "```", "\\", "😀", "𝕏", "你好。", "\n\n", ". ",
           "\ud83d", "\u200d", "\x00", " "]
pieces = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(SPECIAL)), max_size=30).map("".join)
texts = st.one_of(pieces, st.tuples(pieces, st.integers(1, 400)).map(lambda pair: pair[0] * pair[1]))


class RecordingBot:
    """The Bot methods the outbox uses, recording what would go over the wire."""

    def __init__(self, *, drafts: bool = True, refuse: set[int] = frozenset()) -> None:
        self.ids = itertools.count(1)
        self.screen: dict[tuple[int, int], str] = {}
        self.calls: list[tuple[str, int, dict]] = []
        self.drafts, self.refuse = drafts, refuse

    async def send_message(self, chat_id, text, **kwargs):
        if chat_id in self.refuse:
            raise Forbidden("Forbidden: bot can't initiate conversation with a user")
        self.calls.append(("sendMessage", chat_id, dict(kwargs, text=text)))
        message_id = next(self.ids)
        self.screen[(chat_id, message_id)] = text
        return SimpleNamespace(message_id=message_id)

    async def edit_message_text(self, text, chat_id, message_id, **kwargs):
        if self.screen[(chat_id, message_id)] == text:
            raise BadRequest("Message is not modified")
        self.calls.append(("editMessageText", chat_id, dict(kwargs, text=text)))
        self.screen[(chat_id, message_id)] = text

    async def send_message_draft(self, chat_id, draft_id, text, **kwargs):
        if not self.drafts:
            raise BadRequest("Method not found")
        self.calls.append(("sendMessageDraft", chat_id, dict(kwargs, text=text)))

    async def send_document(self, chat_id, document, **kwargs):
        self.calls.append(("sendDocument", chat_id, kwargs))
        return SimpleNamespace(message_id=next(self.ids))

    async def send_chat_action(self, chat_id, action, **kwargs):
        self.calls.append(("sendChatAction", chat_id, kwargs))

    def shown(self, chat_id: int) -> list[str]:
        return [text for (chat, _), text in sorted(self.screen.items(), key=lambda item: item[0][1]) if chat == chat_id]


def wire_safe(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(text.strip()) and utf16_len(text) <= 4096


def squeeze(text: str) -> str:
    return re.sub(r"\s", "", text)


@settings(max_examples=80, deadline=None)
@given(texts)
@example(" " * 5000 + "x\ud800" + "\n" * 4100 + "end")
async def test_any_reply_is_sent_whole_as_plain_text_within_the_limit(text):
    bot = RecordingBot()
    await TelegramOutbox(bot, interval=None).send(KEY, Reply(text, reply_to="3"))
    sent = [params for method, _, params in bot.calls if method == "sendMessage"]
    assert all(wire_safe(params["text"]) and "parse_mode" not in params for params in sent)
    joined = "".join(params["text"] for params in sent)
    assert joined == clean_text(text) if utf16_len(text) <= 4096 else squeeze(joined) == squeeze(clean_text(text))
    assert [bool(params.get("reply_parameters")) for params in sent] == [True] + [False] * (len(sent) - 1)
    if not text.strip():
        assert [params["text"] for params in sent] == [EMPTY_TEXT]


async def stream(pieces: list[str]) -> AsyncIterator[Chunk]:
    for piece in pieces:
        yield Chunk(piece)
    yield Chunk("", FinishReason.STOP)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.text(min_size=1, max_size=300), st.sampled_from(SPECIAL)), min_size=1, max_size=40),
    st.sampled_from(["draft", "edit", "refused-draft", "final"]),
)
async def test_a_streamed_reply_ends_with_exactly_the_generated_text_on_screen(chunks, mode):
    bot = RecordingBot(drafts=mode != "refused-draft")
    drafts = DraftSupport(True) if mode in ("draft", "refused-draft") else None
    outbox = TelegramOutbox(bot, interval=None if mode == "final" else 0.0, drafts=drafts)
    streamer = ReplyStreamer(outbox, KEY)
    await streamer.consume(stream(chunks))
    full = streamer.text.strip() or "…"
    await streamer.finish(full)
    await outbox.aclose()
    shown = bot.shown(555)
    assert all(wire_safe(text) for text in shown)
    assert squeeze("".join(shown)) == squeeze(clean_text(full))
    if utf16_len(full) <= 4096:
        assert shown == [clean_text(full).strip() or EMPTY_TEXT]


async def test_private_replies_in_groups_go_to_the_dm_or_fall_back_to_the_group():
    bot = RecordingBot(refuse={8})
    sent = await TelegramOutbox(bot, interval=None, dm_user_id="7").send(GROUP_KEY, Reply("only for you", private=True))
    assert sent.key == ConversationKey("telegram", "7")
    fallback = await TelegramOutbox(bot, interval=None, dm_user_id="8").send(GROUP_KEY, Reply("for 8", private=True))
    assert fallback.key == GROUP_KEY
    assert [(method, chat, params.get("message_thread_id")) for method, chat, params in bot.calls] == [
        ("sendMessage", 7, None), ("sendMessage", -1001, 9)
    ]
