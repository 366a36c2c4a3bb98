"""The personalization service: profiles, memories in the prompt, learning from turns,
recommendations, forgetting. Wired by core/personalization/feature.py; its chat commands
live in core/personalization/commands.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import weakref
from collections import Counter, deque
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from core import confirmations
from core.catalog import CatalogItem
from core.dispatcher import Context, Handler
from core.events import ChatKind
from core.personalization.catalog import Catalog
from core.personalization.facts import Fact, extract_facts, is_topical
from core.personalization.memory import current_facts, rank_memories, visible_in
from core.personalization.privacy import LinkCodes, forget_user_data, user_scope
from core.personalization.profiles import consent_of, preference_sections
from core.personalization.scoring import combine_interests, smoothed_similarity, update_interest
from core.personalization.settings import PersonalizationSettings
from core.personas import Persona
from core.ports import Embedder, Store
from core.prompt import PromptSection
from core.records import Memory, Profile, StoredMessage
from core.runtime import Runtime
from core.seams import UserDataHolder

log = logging.getLogger(__name__)

STATE_EPOCH = "personalization.forgets"  # ctx.state: forgets of the speaker seen at entry
STATE_QUERY = "personalization.query"  # ctx.state: embedding of the message
STATE_MEMORIES = "personalization.memories"  # ctx.state: ids of memories given to the prompt
STATE_FORGOT = "personalization.forgot"  # ctx.state: this event forgot its user itself
SEEN_SETTING = "catalog_seen"
FORGET_SETTING = "forget_confirm"  # a /forget waiting for /forget confirm: {"until": wall time}


@dataclasses.dataclass
class _Activity:
    """Events of one user being handled right now, and forgets that happened meanwhile."""

    keys: Counter[str] = dataclasses.field(default_factory=Counter)
    forgets: int = 0


class Personalization:
    """The personalization service: what the bot knows about each user, and how it is used."""

    def __init__(
        self,
        bot: Runtime,
        embedder: Embedder,
        options: PersonalizationSettings,
        catalog: Catalog,
        personas: dict[str, np.ndarray],
    ) -> None:
        self.store: Store = bot.store
        self.settings = bot.settings
        self.embedder = embedder
        self._chat, self._personas, self._seams = bot.chat, bot.personas, bot.seams
        self.options = options
        self.catalog = catalog  # the bot file's [[catalog]]; see full_catalog() for the plugins' items
        self._plugin_items: tuple[CatalogItem, ...] = ()
        self._full_catalog = catalog
        self.persona_vectors = personas
        self.links = LinkCodes(bot.store, options.link_code_ttl_s)
        self.clock = time.time  # wall time: memory ages, forget confirmations (stored, so they outlive the process)
        self.monotonic = time.monotonic  # deadlines: link attempts
        self._activity: dict[str, _Activity] = {}
        self.link_failures: dict[str, deque[float]] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- helpers -----------------------------------------------------------------------

    @asynccontextmanager
    async def user_lock(self, user_id: str):  # type: ignore[no-untyped-def]
        """Serialises read-modify-write of one user's profile and settings."""
        lock = self._locks.get(user_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[user_id] = lock
        async with lock:
            yield

    async def identities(self, user_id: str) -> list[str]:
        """``user_id`` first, then the identities linked to it."""
        linked = await self.store.linked_identities(user_id)
        return [user_id] + [other for other in linked if other != user_id]

    def consent(self, profile: Profile, flag: str) -> bool:
        return consent_of(profile, flag, self.options.memory_default)

    async def update_profiles(self, ids: list[str], change: Any) -> None:
        """Apply ``change(profile) -> profile`` to each identity's stored profile."""
        for identity in ids:
            async with self.user_lock(identity):
                profile = await self.store.get_profile(identity)
                await self.store.save_profile(change(profile))

    async def group_memories(self, ids: list[str]) -> list[Memory]:
        found: list[Memory] = []
        for identity in ids:
            found += await self.store.memories(identity)
        return current_facts(found)

    async def group_interest(self, ids: list[str]) -> np.ndarray | None:
        profiles = [await self.store.get_profile(identity) for identity in ids]
        return combine_interests([(p.interest, p.interest_count) for p in profiles], self.options.interest_decay)

    def _forgotten_during(self, ctx: Context) -> bool:
        activity = self._activity.get(ctx.event.user.qualified)
        return activity is not None and activity.forgets != ctx.state.get(STATE_EPOCH, activity.forgets)

    # -- middleware ----------------------------------------------------------------------

    async def track_turns(self, ctx: Context, call_next: Handler) -> None:
        """Innermost middleware: records whose events are in flight; if the user was
        forgotten meanwhile, sweeps again what this event stored after the forget."""
        user, key = ctx.event.user.qualified, ctx.event.key.qualified
        activity = self._activity.setdefault(user, _Activity())
        ctx.state[STATE_EPOCH] = activity.forgets
        activity.keys[key] += 1
        try:
            await call_next(ctx)
        finally:
            activity.keys[key] -= 1
            if activity.keys[key] <= 0:
                del activity.keys[key]
            if activity.forgets != ctx.state[STATE_EPOCH] and not ctx.state.get(STATE_FORGOT):
                try:
                    await asyncio.shield(self.store.forget_user(user))
                except Exception:
                    log.exception("sweep after forget failed for an event of a forgotten user")
            if not activity.keys and self._activity.get(user) is activity:
                del self._activity[user]

    # -- prompt ------------------------------------------------------------------------

    async def contribute(self, ctx: Context, persona: Persona) -> list[PromptSection]:
        event = ctx.event
        ids = await self.identities(event.user.qualified)
        own = await self.store.get_profile(ids[0])
        sections = preference_sections(own.preferences)
        if not self.consent(own, "memory") or self.options.max_memories_in_prompt == 0:
            return sections
        try:
            return sections + await self._memory_sections(ctx, ids, own)
        except Exception:  # a failing embedder must not cost the user their reply
            log.exception("memory retrieval failed for %s; answering without memories", event.event_id)
            return sections

    async def _memory_sections(self, ctx: Context, ids: list[str], own: Profile) -> list[PromptSection]:
        event = ctx.event
        group_chat = event.chat_kind is ChatKind.GROUP
        memories = visible_in(
            await self.group_memories(ids),
            group_chat=group_chat,
            private_in_groups=self.consent(own, "memories_in_groups"),
        )
        query = (await self.embedder.embed([event.text]))[0]
        ctx.state[STATE_QUERY] = query
        ranked = rank_memories(
            query,
            memories,
            alpha=self.options.alpha,
            now=self.clock(),
            recency_weight=self.options.recency_weight,
            half_life_days=self.options.recency_half_life_days,
            query_text=event.text,
            lexical_weight=self.options.lexical_weight,
        )[: self.options.max_memories_in_prompt]
        ctx.state[STATE_MEMORIES] = [item.memory.id for item in ranked]
        limit = self.options.max_memory_chars
        # Higher priority survives a short token budget: the best match is dropped last.
        return [PromptSection(item.memory.text[:limit], priority=500 - rank) for rank, item in enumerate(ranked)]

    # -- learning ----------------------------------------------------------------------

    async def observe(self, ctx: Context, user_turn: StoredMessage, reply: str) -> None:
        event = ctx.event
        user = event.user.qualified
        if self._forgotten_during(ctx):
            return
        profile = await self.store.get_profile(user)
        if not self.consent(profile, "memory"):
            return
        found = extract_facts(user_turn.text)
        retractions = [fact for fact in found if fact.retracts is not None]
        facts = [fact for fact in found if fact.retracts is None]
        if not found and not is_topical(user_turn.text):
            return
        texts = [fact.text[: self.options.max_memory_chars] for fact in facts]
        query = ctx.state.get(STATE_QUERY)
        wanted = texts if query is not None else [user_turn.text, *texts]
        vectors = await self.embedder.embed(wanted) if wanted else np.zeros((0, self.embedder.dimension))
        if query is None:
            query, vectors = vectors[0], vectors[1:]
        scope = "group" if event.chat_kind is ChatKind.GROUP else "private"
        async with self.user_lock(user):
            if self._forgotten_during(ctx):
                return
            if is_topical(user_turn.text):
                profile = await self.store.get_profile(user)
                decay = self.options.interest_decay
                interest, count = update_interest(profile.interest, profile.interest_count, query, decay)
                await self.store.save_profile(
                    dataclasses.replace(profile, interest=tuple(interest.tolist()), interest_count=count)
                )
            if retractions:
                await self._retract(user, retractions)
            if facts:
                await self._remember(user, facts, texts, vectors, scope, user_turn.id)

    async def _retract(self, user: str, retractions: list[Fact]) -> None:
        """Delete the live memories a negation takes back, on every linked identity
        ("I don't live in Paris anymore" told on Telegram also drops it from Discord)."""
        for identity in await self.identities(user):
            for memory in await self.store.memories(identity):
                if any(fact.subject == memory.subject and fact.withdraws(memory.text) for fact in retractions):
                    await self.store.delete_memory(identity, memory.id)

    async def _remember(
        self, user: str, facts: list[Fact], texts: list[str], vectors: np.ndarray, scope: str, source: int
    ) -> None:
        live = await self.store.memories(user)
        current = {memory.subject: memory for memory in live}
        for fact, text, vector in zip(facts, texts, vectors):
            same = current.get(fact.subject)
            if same is not None and same.text == text and same.scope == scope:
                continue  # said again: keep the one we have
            await self.store.add_memory(user, fact.subject, text, vector.tolist(), scope, source_message_id=source)
        live = await self.store.memories(user)
        for memory in live[: max(0, len(live) - self.options.max_memories_per_user)]:
            await self.store.delete_memory(user, memory.id)

    async def forget(self, user: str, actor: str = "system") -> tuple[list[str], dict[str, int]]:
        """Stop the user's replies in flight, then delete all their data (linked identities
        and plugins too). PluginError: a plugin's data is left, everything else is gone."""
        ids = await self.identities(user)
        for identity in ids:
            activity = self._activity.get(identity)
            if activity is not None:
                activity.forgets += 1
                for key in list(activity.keys):
                    self._chat.cancel(key)
            self.link_failures.pop(identity, None)  # a pending forget confirmation is a user setting: forgotten too
        return await forget_user_data(self.store, user, actor=actor, holders=self._seams.user_data)

    async def request_forget(self, user: str) -> None:
        """Hold a /forget for confirmation, in the store: ``/forget confirm`` works from the
        next process too (``personabot ask``, a restart), until the deadline."""
        ttl = self.options.forget_confirm_ttl_s
        await confirmations.hold(self.store, user_scope(user), FORGET_SETTING, {}, ttl_s=ttl, now=self.clock())

    async def take_forget_request(self, user: str) -> bool:
        """Whether a /forget of ``user`` waits for confirmation and is still in time; it is used up."""
        taken = await confirmations.take(self.store, user_scope(user), FORGET_SETTING, now=self.clock())
        return taken.status == "ok"

    def user_data_holders(self) -> list[UserDataHolder]:
        return list(self._seams.user_data)

    async def full_catalog(self) -> Catalog:
        """The bot file's catalog followed by the items of the ``catalog_sources`` seam (plugins).

        Plugins load after this feature, and may add items later: their items are
        embedded when /recommend first sees them, and again only when they change. An
        item whose id is already taken is left out (ids key what a user was shown).
        """
        items = tuple(item for source in self._seams.catalog_sources for item in source())
        if items != self._plugin_items:
            taken = {item.id for item in self.catalog.items}
            extra = []
            for item in items:
                if item.id in taken:
                    log.warning("catalog item %r of a plugin left out: another item has that id", item.id)
                    continue
                taken.add(item.id)
                extra.append(item)
            self._full_catalog = self.catalog.extended(await Catalog.build(extra, self.embedder))
            self._plugin_items = items
        return self._full_catalog

    def best_persona(self, interest: np.ndarray) -> Persona | None:
        """The persona whose description is closest to the user's interests, by P(u,i)."""
        if len(self.persona_vectors) < 2:
            return None
        names = list(self.persona_vectors)
        scores = smoothed_similarity(interest, np.stack([self.persona_vectors[n] for n in names]), self.options.alpha)
        return self._personas.get(names[int(np.argmax(scores))])

    async def seen_items(self, ids: list[str]) -> Counter[str]:
        seen: Counter[str] = Counter()
        for identity in ids:
            raw = await self.store.get_setting(user_scope(identity), SEEN_SETTING)
            seen.update(json.loads(raw) if raw else {})
        return seen

    async def mark_seen(self, user: str, item_ids: list[str]) -> None:
        async with self.user_lock(user):
            raw = await self.store.get_setting(user_scope(user), SEEN_SETTING)
            seen = Counter(json.loads(raw) if raw else {})
            seen.update(item_ids)
            await self.store.set_setting(user_scope(user), SEEN_SETTING, json.dumps(dict(seen), ensure_ascii=False))
