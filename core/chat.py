"""ChatService: one user turn in, one streamed and stored bot turn out.

    persona + profile/memory sections + history → prompt (token budget)
      → Generator.stream → ReplyStreamer (Outbox) → reply filters → Store

Extension points, used by personalization, safety and plugins:
``contributors`` add prompt sections, ``reply_filters`` rewrite or refuse the
final text, ``observers`` learn from a finished turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from core.errors import GenerationError, NotFound
from core.events import ChatKind, ChatMessage, GenerationRequest, IncomingMessage
from core.personas import Persona
from core.prompt import Budget, PromptSection, build_prompt
from core.records import Conversation, StoredMessage
from core.streaming import ReplyStreamer, typing_indicator

if TYPE_CHECKING:
    from core.app import App
    from core.dispatcher import Context

log = logging.getLogger(__name__)

PromptContributor = Callable[["Context", Persona], Awaitable[list[PromptSection]]]
ReplyFilter = Callable[["Context", str], Awaitable[str]]
TurnObserver = Callable[["Context", StoredMessage, str], Awaitable[None]]

EMPTY_REPLY = "…"


def chat_scope(event: IncomingMessage) -> str:
    return f"chat:{event.key.chat_qualified}"


def space_scope(event: IncomingMessage) -> str | None:
    return f"space:{event.key.platform}:{event.space_id}" if event.space_id else None


class ChatService:
    def __init__(self, app: "App") -> None:
        self.app = app
        self.contributors: list[PromptContributor] = []
        self.reply_filters: list[ReplyFilter] = []
        self.observers: list[TurnObserver] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._inflight: dict[str, set[asyncio.Task]] = {}

    async def resolve_persona(self, event: IncomingMessage, conversation: Conversation) -> Persona:
        """Conversation choice, then channel, then server, then the user's own, then the bot's."""
        store, personas = self.app.store, self.app.personas
        candidates = [conversation.persona, await store.get_setting(chat_scope(event), "persona")]
        space = space_scope(event)
        if space:
            candidates.append(await store.get_setting(space, "persona"))
        if event.chat_kind is not ChatKind.GROUP:
            profile = await store.get_profile(event.user.qualified)
            candidates.append(profile.preferences.get("persona"))
        candidates.append(await store.get_setting("bot", "persona"))
        for name in candidates:
            if name and name in personas:
                return personas.get(name)
        return personas.get(self.app.settings.personas.default)

    async def handle(self, ctx: "Context") -> None:
        event = ctx.event
        store = self.app.store
        async with self.lock(event.key.qualified):  # turns of one conversation are answered in order
            await store.touch_user(event.user.qualified, event.user_display_name)
            conversation = await store.active_conversation(event.key)
            user_turn = await store.add_user_message(conversation.id, event.user.qualified, event.text, event.event_id)
            for notice in ctx.notices:
                await ctx.reply(notice)
            await self.respond(ctx, conversation, user_turn)

    def lock(self, conversation_key: str) -> asyncio.Lock:
        """The lock that orders the turns of one conversation; crash recovery answers under it too."""
        return self._locks.setdefault(conversation_key, asyncio.Lock())

    async def respond(self, ctx: "Context", conversation: Conversation, user_turn: StoredMessage) -> str:
        """Answer a stored user turn (also used to answer turns left unanswered by a crash)."""
        app, event = self.app, ctx.event
        persona = await self.resolve_persona(event, conversation)
        stored = await app.store.history(conversation.id, limit=app.settings.limits.history_messages + 1)
        history = [ChatMessage(message.role, message.text) for message in stored if message.id <= user_turn.id]
        sections: list[PromptSection] = []
        for contributor in self.contributors:
            sections += await contributor(ctx, persona)
        params = app.settings.model.generation.to_params()
        generator = app.generator
        prompt = build_prompt(
            persona, history, generator.count_tokens, Budget(generator.context_window, params.max_new_tokens), sections
        )
        request = GenerationRequest(prompt, params, conversation_id=event.key.qualified, user_id=event.user.qualified)
        streamer = ReplyStreamer(
            ctx.outbox, event.key, reply_to=event.message_id, fences=getattr(ctx.outbox, "markdown_fences", False)
        )
        task = asyncio.current_task()
        self._inflight.setdefault(event.key.qualified, set()).add(task)  # type: ignore[arg-type]
        try:
            async with typing_indicator(ctx.outbox, event.key):
                await streamer.consume(generator.stream(request))
            text = await self._filtered(ctx, streamer.text.strip() or EMPTY_REPLY)
        except GenerationError as error:
            log.warning("generation failed for %s: %s", event.event_id, error)
            text = error.user_message
        except asyncio.CancelledError:
            # A reset, forget or shutdown stopped this turn: keep what was said, then stop.
            # Nothing said yet: the turn stays unanswered, so crash recovery answers it later.
            if streamer.text.strip():
                await asyncio.shield(self._store_partial(ctx, user_turn, streamer.text.strip()))
            raise
        finally:
            self._inflight[event.key.qualified].discard(task)  # type: ignore[arg-type]
        await streamer.finish(text)
        await app.store.add_reply(user_turn.id, text)
        for observer in self.observers:
            try:
                await observer(ctx, user_turn, text)
            except Exception:
                log.exception("turn observer %s failed", getattr(observer, "__name__", observer))
        return text

    async def _filtered(self, ctx: "Context", text: str) -> str:
        for reply_filter in self.reply_filters:
            text = await reply_filter(ctx, text)
        return text

    async def _store_partial(self, ctx: "Context", user_turn: StoredMessage, text: str) -> None:
        """Keep what a cancelled reply had said, through the same filters as a finished one."""
        with contextlib.suppress(NotFound):  # a /forget deleted the turn meanwhile
            await self.app.store.add_reply(user_turn.id, await self._filtered(ctx, text))

    def cancel(self, conversation_key: str) -> int:
        """Stop in-flight replies in one conversation; returns how many were cancelled."""
        tasks = [task for task in self._inflight.get(conversation_key, ()) if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        return len(tasks)
