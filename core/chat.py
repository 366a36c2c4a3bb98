"""ChatService: one user turn in, one streamed and stored bot turn out.

    persona + profile/memory sections + history → prompt (token budget)
      → Generator.stream → ReplyStreamer (Outbox) → reply filters → Store

It reads three seams (core/seams.py), filled by personalization, safety and plugins:
``prompt_contributors`` add prompt sections, ``reply_filters`` rewrite or refuse the
final text, ``turn_observers`` learn from a finished turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from core.dispatcher import Context
from core.errors import GenerationError, NotFound
from core.events import ChatKind, ChatMessage, GenerationRequest, IncomingMessage
from core.media import with_images
from core.personas import Persona, PersonaLibrary
from core.ports import Generator, Store
from core.prompt import Budget, PromptSection, TokenCounts, plan_prompt
from core.records import Conversation, StoredMessage, TurnContext
from core.settings import BotSettings
from core.streaming import ReplyStreamer, typing_indicator
from core.tools.loop import answer_with_tools

if TYPE_CHECKING:
    from core.seams import Seams

log = logging.getLogger(__name__)

EMPTY_REPLY = "…"


def chat_scope(event: IncomingMessage) -> str:
    return f"chat:{event.key.chat_qualified}"


def space_scope(event: IncomingMessage) -> str | None:
    return f"space:{event.key.platform}:{event.space_id}" if event.space_id else None


def persona_scopes(event: IncomingMessage) -> list[str]:
    """Where a persona may be set for this event, most specific first; the bot's last."""
    space = space_scope(event)
    return [chat_scope(event), *([space] if space else []), "bot"]


class ChatService:
    def __init__(
        self, settings: BotSettings, personas: PersonaLibrary, store: Store, generator: Generator, seams: "Seams"
    ) -> None:
        self.settings, self.personas, self.store = settings, personas, store
        self.generator = generator  # the App sets the wrapped one once features are set up
        self.seams = seams
        self._locks: dict[str, asyncio.Lock] = {}
        self._inflight: dict[str, set[asyncio.Task]] = {}
        self._token_counts: tuple[Generator, TokenCounts] | None = None

    def token_counts(self) -> TokenCounts:
        """Per-message token counts of the current generator, kept across turns."""
        if self._token_counts is None or self._token_counts[0] is not self.generator:
            self._token_counts = (self.generator, TokenCounts(self.generator.count_tokens))
        return self._token_counts[1]

    async def resolve_persona(self, event: IncomingMessage, conversation: Conversation) -> Persona:
        """Conversation choice, then channel, then server, then the user's own, then the bot's."""
        context = await self.store.turn_context(conversation.id, event.user.qualified, "persona", persona_scopes(event), 0)
        return self._persona_in(event, conversation, context)

    def _persona_in(self, event: IncomingMessage, conversation: Conversation, context: TurnContext) -> Persona:
        chosen = context.settings
        candidates = [conversation.persona, *(chosen.get(scope) for scope in persona_scopes(event)[:-1])]
        if event.chat_kind is not ChatKind.GROUP:
            candidates.append(context.profile.preferences.get("persona"))
        candidates.append(chosen.get("bot"))
        for name in candidates:
            if name and name in self.personas:
                return self.personas.get(name)
        return self.personas.get(self.settings.personas.default)

    async def handle(self, ctx: Context) -> None:
        event = ctx.event
        async with self.lock(event.key.qualified):  # turns of one conversation are answered in order
            started = await self.store.begin_turn(
                event.key, event.user.qualified, event.user_display_name, event.text, event.event_id
            )
            for notice in (*ctx.notices, *([event.media_notice] if event.media_notice else [])):
                await ctx.reply(notice)
            await self.respond(ctx, started.conversation, started.user_turn)

    def lock(self, conversation_key: str) -> asyncio.Lock:
        """The lock that orders the turns of one conversation; crash recovery answers under it too."""
        return self._locks.setdefault(conversation_key, asyncio.Lock())

    async def respond(self, ctx: Context, conversation: Conversation, user_turn: StoredMessage) -> str:
        """Answer a stored user turn (also used to answer turns left unanswered by a crash)."""
        event = ctx.event
        context = await self.store.turn_context(  # one read: persona settings, profile, history
            conversation.id, event.user.qualified, "persona", persona_scopes(event), self.settings.limits.history_messages + 1
        )
        persona = self._persona_in(event, conversation, context).localized(ctx.locale)
        history = [ChatMessage(message.role, message.text) for message in context.history if message.id <= user_turn.id]
        sections: list[PromptSection] = []
        for contributor in self.seams.prompt_contributors:
            sections += await contributor(ctx, persona)
        params = self.settings.model.generation.to_params()
        generator = self.generator
        built = plan_prompt(
            persona, history, generator.count_tokens, Budget(generator.context_window, params.max_new_tokens, self.settings.prompt.min_shares), sections,
            self.token_counts(),
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("prompt for %s\n%s", event.event_id, built.describe(generator.count_tokens))
        messages = with_images(built.messages, event.images) if event.images and self.settings.model.vision else built.messages
        request = GenerationRequest(messages, params, conversation_id=event.key.qualified, user_id=event.user.qualified)
        streamer = ReplyStreamer(
            ctx.outbox, event.key, reply_to=event.message_id, fences=ctx.outbox.markdown_fences
        )
        task = asyncio.current_task()
        self._inflight.setdefault(event.key.qualified, set()).add(task)  # type: ignore[arg-type]
        try:
            async with typing_indicator(ctx.outbox, event.key):
                said = await answer_with_tools(
                    self.seams.tools, self.store, ctx, generator, request, streamer, turn_id=user_turn.id
                )
            text = await self._filtered(ctx, said.strip() or EMPTY_REPLY)
            if built.sources:  # only passages that reached the prompt are cited
                text = f"{text}\n\n" + ctx.t("Sources: {sources}", sources="; ".join(built.sources))
        except GenerationError as error:
            log.warning("generation failed for %s: %s", event.event_id, error)
            text = ctx.t(error.user_message)
        except asyncio.CancelledError:
            # A reset, forget or shutdown stopped this turn: keep what was said, then stop.
            # Nothing said yet: the turn stays unanswered, so crash recovery answers it later.
            if streamer.text.strip():
                await asyncio.shield(self._store_partial(ctx, user_turn, streamer.text.strip()))
            raise
        finally:
            self._inflight[event.key.qualified].discard(task)  # type: ignore[arg-type]
        await streamer.finish(text)
        await self.store.add_reply(user_turn.id, text)
        for observer in self.seams.turn_observers:
            try:
                await observer(ctx, user_turn, text)
            except Exception:
                log.exception("turn observer %s failed", getattr(observer, "__name__", observer))
        return text

    async def _filtered(self, ctx: Context, text: str) -> str:
        for reply_filter in self.seams.reply_filters:
            text = await reply_filter(ctx, text)
        return text

    async def _store_partial(self, ctx: Context, user_turn: StoredMessage, text: str) -> None:
        """Keep what a cancelled reply had said, through the same filters as a finished one."""
        with contextlib.suppress(NotFound):  # a /forget deleted the turn meanwhile
            await self.store.add_reply(user_turn.id, await self._filtered(ctx, text))

    def cancel(self, conversation_key: str) -> int:
        """Stop in-flight replies in one conversation; returns how many were cancelled."""
        tasks = [task for task in self._inflight.get(conversation_key, ()) if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        return len(tasks)
