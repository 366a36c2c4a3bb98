"""Outboxes: how the core answers on Discord, in a channel or to a slash command.

Every message goes out with :func:`no_pings`: whatever a model writes (``@everyone``,
``@here``, ``<@id>``, ``<@&role>``) reaches nobody's notifications. The only ping is
the reply to the person who addressed the bot in a server. Text over 2000 characters
is split (``core.text.split_text`` with fences, so no part breaks a code block), and
discord.py errors become :class:`core.errors.PlatformError` at this edge.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import discord

from core.errors import PlatformError
from core.events import Attachment, ConversationKey, Reply, SentMessage
from core.text import split_text, utf16_len

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 2000
ORIGINAL = "@original"  # SentMessage id of an interaction's first response

T = TypeVar("T")


def no_pings(*, replied_user: bool = False) -> discord.AllowedMentions:
    """Mention nobody; optionally notify the author of the message being answered."""
    return discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=replied_user)


def to_file(attachment: Attachment | None) -> discord.File | None:
    if attachment is None:
        return None
    return discord.File(io.BytesIO(attachment.data), filename=attachment.filename)


def target_channel_id(key: ConversationKey) -> int:
    """The channel a conversation's messages go to: the thread when there is one."""
    return int(key.thread_id or key.chat_id)


async def platform_call(awaitable: Awaitable[T], what: str) -> T:
    """Run one Discord call; translate its failure into the core's PlatformError."""
    try:
        return await awaitable
    except discord.Forbidden as error:
        raise PlatformError(f"discord: {what}: forbidden ({error.code}) {error.text}") from error
    except discord.RateLimited as error:
        raise PlatformError(f"discord: {what}: rate limited for {error.retry_after:.0f}s, not retrying") from error
    except discord.HTTPException as error:
        raise PlatformError(f"discord: {what}: HTTP {error.status} ({error.code}) {error.text}") from error
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
        raise PlatformError(f"discord: {what}: {type(error).__name__}: {error}") from error


class Pacer:
    """Discord's message budgets (5 per 5 s in a channel, 50 requests a second in all) as
    sliding windows checked and taken in one step when a call leaves. discord.py follows
    the rate-limit headers Discord sends, but only after the first response of a bucket
    tells it; this keeps a burst of answers within the budget from the first call. A new
    process cannot know what a killed one sent in the last seconds, so it sends nothing
    for one channel period after it starts (the gateway's READY takes about as long).
    The bot takes a slot for every attempt of a message call on the wire (an aiohttp trace
    hook, adapters/discord/bot.py), discord.py's own retries of a 429 or 5xx included.
    Message calls take at most 45 of the 50 a second: the rest is room for the other calls
    (typing, the history reads of a catch-up) and for a request that reaches Discord after
    a later one (the full soak saw 7 one-second windows over 50 with a budget of 50)."""

    def __init__(self, per_channel: int = 5, channel_period_s: float = 5.0, overall: int = 45,
                 margin_s: float = 0.1, quiet_start: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self._channel = (per_channel, channel_period_s + margin_s)
        self._overall = (overall, 1.0 + margin_s)
        self._times: dict[int | None, deque[float]] = {None: deque()}
        self._clock = clock
        self._quiet_until = clock() + channel_period_s + margin_s if quiet_start else 0.0

    def _wait(self, key: int | None, count: int, period: float, now: float) -> float:
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - period:
            times.popleft()
        return 0.0 if len(times) < count else times[-count] + period - now

    async def slot(self, channel_id: int) -> None:
        while True:
            now = self._clock()
            delay = max(self._wait(channel_id, *self._channel, now), self._wait(None, *self._overall, now),
                        self._quiet_until - now)
            if delay <= 0:
                self._times[channel_id].append(now)
                self._times[None].append(now)
                if len(self._times) > 1024:  # forget idle channels
                    for key in [k for k, t in self._times.items() if k is not None and (not t or t[-1] <= now - self._channel[1])]:
                        del self._times[key]
                return
            await asyncio.sleep(delay)


class _DiscordOutbox:
    max_message_length = MAX_MESSAGE_LENGTH
    markdown_fences = True  # Discord renders ``` blocks; splits close and reopen them

    def __init__(self, *, edit_interval: float | None) -> None:
        self._edit_interval = edit_interval

    def measure(self, text: str) -> int:
        """UTF-16 units: never less than code points, so a part fits however Discord counts."""
        return utf16_len(text)

    def edit_interval(self) -> float | None:
        return self._edit_interval

    async def aclose(self) -> None:
        """Nothing is buffered: every send and edit went out when it was made."""
        return None

    def parts(self, text: str) -> list[str]:
        if not text.strip():
            return ["…"]
        return split_text(text, self.max_message_length, self.measure, fences=True)


class ChannelOutbox(_DiscordOutbox):
    """Answers one gateway message in its channel, thread or DM.

    ``private`` replies in a server go to the author's DMs (a plain message cannot be
    ephemeral). Replies reference the user's message in servers when the bot may read
    the history (Discord refuses references otherwise); in DMs they are plain messages.
    Without an author (plugin jobs) every message goes to its key's channel or thread.

    Never twice: each part of the answer to message M (``Reply.answer``, replying to M) is
    sent with the nonce ``M-n`` and ``enforce_nonce`` (discord.py sets it with ``nonce``), so
    Discord returns the message it already made for that nonce instead of a new one. A
    process killed after sending but before storing the reply sends it again at the restart
    and gets the same message back; its text is then made what the bot stores now (an
    edit), so the screen and the history agree. M is the message the answer replies to,
    which for a burst (core/bursts.py) is its last one: a redelivery of that message after
    a kill, answered as a turn of its own, finds the burst's answer. Notices carry no nonce.
    """

    def __init__(
        self,
        client: discord.Client,
        author: discord.abc.User | None,
        *,
        in_server: bool,
        can_reference: bool = True,
        edit_interval: float | None = 1.0,
    ) -> None:
        super().__init__(edit_interval=edit_interval)
        self._nonces = 0
        self._client = client
        self._author = author
        self._in_server = in_server
        self._can_reference = can_reference
        self._channel_of: dict[str, int] = {}  # message id -> DM channel id of a private reply, for edits

    async def _destination(self, key: ConversationKey, private: bool) -> discord.abc.Messageable:
        if private and self._in_server and self._author is not None:
            return await platform_call(self._author.create_dm(), "open a DM")
        return self._client.get_partial_messageable(target_channel_id(key))

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        destination = await self._destination(key, reply.private)
        reference = None
        if self._in_server and not reply.private and reply.reply_to and self._can_reference:
            reference = discord.MessageReference(
                message_id=int(reply.reply_to), channel_id=target_channel_id(key), fail_if_not_exists=False
            )
        parts = self.parts(reply.text)
        message: discord.Message | None = None
        the_answer = reply.answer and reply.reply_to is not None
        for index, part in enumerate(parts):
            answers = reference is not None and index == 0  # only the first part is a reply
            kwargs: dict[str, Any] = {"content": part, "allowed_mentions": no_pings(replied_user=answers)}
            if answers:
                kwargs["reference"] = reference
            if index == len(parts) - 1 and reply.attachment is not None:
                kwargs["file"] = to_file(reply.attachment)
            if the_answer:
                kwargs["nonce"] = f"{reply.reply_to}-{self._nonces}"  # at most 25 characters: a snowflake and a count
                self._nonces += 1
            message = await platform_call(destination.send(**kwargs), f"send to {destination.id}")
            if message.channel.id != target_channel_id(key):
                self._channel_of[str(message.id)] = message.channel.id
            if the_answer and message.content != part and reply.attachment is None:  # made before a kill
                await platform_call(message.edit(content=part, allowed_mentions=no_pings()), f"edit in {message.channel.id}")
        assert message is not None
        return SentMessage(key, str(message.id))

    async def edit(self, sent: SentMessage, text: str) -> None:
        channel_id = self._channel_of.get(sent.message_id, target_channel_id(sent.key))
        partial = self._client.get_partial_messageable(channel_id).get_partial_message(int(sent.message_id))
        await platform_call(partial.edit(content=text, allowed_mentions=no_pings()), f"edit in {channel_id}")

    async def typing(self, key: ConversationKey) -> None:
        channel = self._client.get_partial_messageable(target_channel_id(key))
        await platform_call(channel.typing(), f"typing in {channel.id}")


class InteractionOutbox(_DiscordOutbox):
    """Answers one slash command: the interaction response first, follow-ups after.

    ``private`` answers are ephemeral. :meth:`defer` acknowledges at once ("thinking…")
    when the answer needs time; Discord then takes the first follow-up in its place,
    with the visibility chosen at defer time, so the deferral uses the command's own
    ``private`` flag.
    """

    def __init__(
        self, interaction: discord.Interaction, *, private: bool = False, edit_interval: float | None = 1.0
    ) -> None:
        super().__init__(edit_interval=edit_interval)
        self._interaction = interaction
        self._private = private
        self._lock = asyncio.Lock()  # one response at a time: defer and send must not race
        self.deferred = False
        self.answered = False

    async def defer(self) -> None:
        async with self._lock:
            if not self._interaction.response.is_done():
                await platform_call(
                    self._interaction.response.defer(thinking=True, ephemeral=self._private), "defer interaction"
                )
                self.deferred = True

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        response, followup = self._interaction.response, self._interaction.followup
        parts = self.parts(reply.text)
        message_id = ORIGINAL
        async with self._lock:
            for index, part in enumerate(parts):
                kwargs: dict[str, Any] = {"content": part, "allowed_mentions": no_pings(), "ephemeral": reply.private}
                if index == len(parts) - 1 and reply.attachment is not None:
                    kwargs["file"] = to_file(reply.attachment)
                if not response.is_done():
                    await platform_call(response.send_message(**kwargs), "answer interaction")
                    message_id = ORIGINAL
                else:
                    message = await platform_call(followup.send(wait=True, **kwargs), "follow up interaction")
                    message_id = str(message.id)
                self.answered = True
        return SentMessage(key, message_id)

    async def edit(self, sent: SentMessage, text: str) -> None:
        if sent.message_id == ORIGINAL:
            call = self._interaction.edit_original_response(content=text, allowed_mentions=no_pings())
        else:
            call = self._interaction.followup.edit_message(
                int(sent.message_id), content=text, allowed_mentions=no_pings()
            )
        await platform_call(call, "edit interaction answer")

    async def typing(self, key: ConversationKey) -> None:
        """An unanswered interaction shows "thinking…" instead of typing."""
        await self.defer()

    async def finish(self) -> None:
        """Remove the "thinking…" placeholder when the core chose not to answer (e.g. a ban)."""
        if self.deferred and not self.answered:
            await platform_call(self._interaction.delete_original_response(), "delete deferred answer")
