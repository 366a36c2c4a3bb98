"""The personalization feature: wires profiles, memories, recommendations and privacy
into an App through its extension points.

    setup_personalization(app, stack)
        contributor  → preferences (trusted), the chosen name and the most relevant
                       memories (untrusted) for each reply
        observer     → after each answered turn: interest vector, facts → memories
        middleware   → knows whose turns are in flight, so /forget can stop them
        commands     → /profile /memory /forget /export /recommend /privacy /link /unlink
        retention    → a background sweep when [storage] retention_days is set
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import weakref
from collections import Counter, deque
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import numpy as np

from core.commands import ArgSpec, CommandSpec
from core.dispatcher import Context, Handler
from core.errors import CommandUsageError, NotFound
from core.events import Attachment, ChatKind, Reply
from core.personalization.catalog import Catalog
from core.personalization.facts import Fact, extract_facts, is_topical
from core.personalization.memory import current_facts, rank_memories, visible_in
from core.personalization.privacy import (
    LinkCodes,
    apply_retention,
    export_json,
    export_user_data,
    forget_user_data,
    retention_loop,
    user_scope,
)
from core.personalization.profiles import (
    CONSENT_FLAGS,
    FIELDS,
    PRIVACY_SETTINGS,
    consent_of,
    describe_preference,
    merge_linked,
    preference_sections,
    validate_preference,
)
from core.personalization.scoring import combine_interests, smoothed_similarity, update_interest
from core.personalization.settings import CatalogItem, PersonalizationSettings, load_personalization
from core.personas import Persona
from core.ports import Embedder, Store
from core.prompt import PromptSection
from core.records import Memory, Profile, StoredMessage

if TYPE_CHECKING:
    from core.app import App
    from core.plugins.manager import PluginManager

log = logging.getLogger(__name__)

STATE_EPOCH = "personalization.forgets"  # ctx.state: forgets of the speaker seen at entry
STATE_QUERY = "personalization.query"  # ctx.state: embedding of the message
STATE_MEMORIES = "personalization.memories"  # ctx.state: ids of memories given to the prompt
SEEN_SETTING = "catalog_seen"


@dataclasses.dataclass
class _Activity:
    """Events of one user being handled right now, and forgets that happened meanwhile."""

    keys: Counter[str] = dataclasses.field(default_factory=Counter)
    forgets: int = 0


class Personalization:
    def __init__(self, app: "App", options: PersonalizationSettings, catalog: Catalog, personas: dict[str, np.ndarray]) -> None:
        self.app = app
        self.options = options
        self.catalog = catalog  # the bot file's [[catalog]]; see full_catalog() for the plugins' items
        self._plugin_items: tuple[CatalogItem, ...] = ()
        self._full_catalog = catalog
        self.persona_vectors = personas
        self.links = LinkCodes(app.store, options.link_code_ttl_s)
        self.clock = time.time  # wall time: memory ages
        self.monotonic = time.monotonic  # deadlines: forget confirmations, link attempts
        self._activity: dict[str, _Activity] = {}
        self._forget_requests: dict[str, float] = {}  # user -> monotonic deadline of the confirmation
        self._link_failures: dict[str, deque[float]] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def store(self) -> Store:
        return self.app.store

    @property
    def plugins(self) -> "PluginManager | None":
        """The plugin manager, once setup_plugins (which runs after this feature) set it."""
        return getattr(self.app, "plugins", None)

    @property
    def embedder(self) -> Embedder:
        assert self.app.embedder is not None, "setup_personalization loads one"
        return self.app.embedder

    # -- helpers -----------------------------------------------------------------------

    @asynccontextmanager
    async def _user_lock(self, user_id: str):  # type: ignore[no-untyped-def]
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
            async with self._user_lock(identity):
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
            if activity.forgets != ctx.state[STATE_EPOCH] and not ctx.state.get("personalization.forgot"):
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
        facts = extract_facts(user_turn.text)
        if not facts and not is_topical(user_turn.text):
            return
        texts = [fact.text[: self.options.max_memory_chars] for fact in facts]
        query = ctx.state.get(STATE_QUERY)
        wanted = texts if query is not None else [user_turn.text, *texts]
        vectors = await self.embedder.embed(wanted) if wanted else np.zeros((0, self.embedder.dimension))
        if query is None:
            query, vectors = vectors[0], vectors[1:]
        scope = "group" if event.chat_kind is ChatKind.GROUP else "private"
        async with self._user_lock(user):
            if self._forgotten_during(ctx):
                return
            if is_topical(user_turn.text):
                profile = await self.store.get_profile(user)
                decay = self.options.interest_decay
                interest, count = update_interest(profile.interest, profile.interest_count, query, decay)
                await self.store.save_profile(
                    dataclasses.replace(profile, interest=tuple(interest.tolist()), interest_count=count)
                )
            if facts:
                await self._remember(user, facts, texts, vectors, scope)

    async def _remember(self, user: str, facts: list[Fact], texts: list[str], vectors: np.ndarray, scope: str) -> None:
        live = await self.store.memories(user)
        current = {memory.subject: memory for memory in live}
        for fact, text, vector in zip(facts, texts, vectors):
            same = current.get(fact.subject)
            if same is not None and same.text == text and same.scope == scope:
                continue  # said again: keep the one we have
            await self.store.add_memory(user, fact.subject, text, vector.tolist(), scope)
        live = await self.store.memories(user)
        for memory in live[: max(0, len(live) - self.options.max_memories_per_user)]:
            await self.store.delete_memory(user, memory.id)

    # -- /profile ------------------------------------------------------------------------

    async def profile_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.identities(user)
        if not args:
            return await self._describe_profile(ids)
        action = args[0].lower()
        if len(args) < 2:
            raise CommandUsageError("field missing", user_message=f"Usage: /profile {action} {'|'.join(FIELDS)}" + (" VALUE" if action == "set" else ""))
        field = args[1].lower()
        if action == "set":
            if len(args) < 3:
                raise CommandUsageError("value missing", user_message=f"Usage: /profile set {field} VALUE")
            value = validate_preference(field, args[2])
        else:
            value = None

        def change(profile: Profile) -> Profile:
            preferences = dict(profile.preferences)
            if value is None:
                preferences.pop(field, None)
            else:
                preferences[field] = value
            return dataclasses.replace(profile, preferences=preferences)

        await self.update_profiles(ids, change)
        if value is None:
            return f"Cleared your {field}."
        return f"Saved: {field} = {describe_preference(field, value)}."

    async def _describe_profile(self, ids: list[str]) -> str:
        own = await self.store.get_profile(ids[0])
        users = [u for u in [await self.store.get_user(identity) for identity in ids] if u is not None]
        memories = await self.group_memories(ids)
        prefs = " · ".join(f"{field}: {describe_preference(field, own.preferences.get(field))}" for field in FIELDS)
        lines = [f"Your profile ({ids[0]})"]
        if len(ids) > 1:
            lines.append(f"Linked accounts: {', '.join(ids[1:])}")
        lines.append(prefs)
        if users:
            first = min(u.first_seen for u in users)
            last = max(u.last_seen for u in users)
            lines.append(f"Messages: {sum(u.message_count for u in users)} · first seen {_date(first)} · last seen {_date(last)}")
        learned = sum([(await self.store.get_profile(i)).interest_count for i in ids])
        lines.append(f"Memories: {len(memories)} (/memory) · interests learned from {learned} message{'' if learned == 1 else 's'}")
        lines.append(
            "Privacy: " + ", ".join(f"{name} {'on' if self.consent(own, flag) else 'off'}" for name, flag in PRIVACY_SETTINGS.items())
            + " (/privacy)"
        )
        lines.append(f"Change: /profile set {'|'.join(FIELDS)} VALUE · /profile clear FIELD")
        return "\n".join(lines)

    # -- /memory -------------------------------------------------------------------------

    async def memory_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.identities(user)
        memories = await self.group_memories(ids)
        if args and args[0].lower() == "forget":
            if len(args) < 2:
                raise CommandUsageError("id missing", user_message="Usage: /memory forget ID (see /memory for ids)")
            try:
                memory_id = int(args[1].lstrip("#"))
            except ValueError:
                raise CommandUsageError("bad id", user_message="Usage: /memory forget ID (a number from /memory)") from None
            for identity in ids:
                async with self._user_lock(identity):
                    if await self.store.delete_memory(identity, memory_id):
                        return f"Forgot memory #{memory_id}."
            raise NotFound(f"memory {memory_id} of {user}", user_message=f"You have no memory #{memory_id}.")
        if not memories:
            text = "I don't remember anything about you yet."
        else:
            lines = [f"#{m.id} {m.text}" + (" (from a private chat)" if m.scope == "private" else "") for m in memories]
            text = "What I remember about you:\n" + "\n".join(lines) + "\n\nRemove one with /memory forget ID."
        own = await self.store.get_profile(user)
        if not self.consent(own, "memory"):
            text += "\nMemory is off: I don't learn new facts or use these (/privacy memory on)."
        return text

    # -- /privacy ------------------------------------------------------------------------

    async def privacy_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.identities(user)
        if not args:
            return await self._explain_privacy(ids)
        if len(args) < 2:
            raise CommandUsageError("value missing", user_message="Usage: /privacy memory|groups|training on|off")
        name, value = args[0].lower(), args[1].lower() == "on"
        flag = PRIVACY_SETTINGS[name]

        def change(profile: Profile) -> Profile:
            return dataclasses.replace(profile, consent={**profile.consent, flag: value})

        await self.update_profiles(ids, change)
        await self.store.audit(user, f"privacy {name}", user, detail={"value": value})
        return f"{name}: {'on' if value else 'off'}. " + _CONSENT_EFFECT[name][value]

    async def _explain_privacy(self, ids: list[str]) -> str:
        own = await self.store.get_profile(ids[0])
        days = self.app.settings.storage.retention_days
        kept = f"deleted after {days} days" if days else "kept until you delete them"
        state = {name: "on" if self.consent(own, flag) else "off" for name, flag in PRIVACY_SETTINGS.items()}
        return "\n".join(
            [
                "What I keep about you:",
                f"• your messages and my replies ({kept});",
                "• your profile: the preferences you set (/profile), message counts, first and last seen,",
                "  and an interest vector learned from your messages (used for /recommend);",
                "• memories: facts you tell me about yourself (/memory);",
                "• accounts you linked (/link).",
                "Your memories are only used when I reply to you.",
                "",
                "Your choices:",
                f"• memory: {state['memory']} — learn facts and interests from your messages (/privacy memory on|off)",
                f"• groups: {state['groups']} — use what you told me in private chats in group chats (/privacy groups on|off)",
                f"• training: {state['training']} — let your conversations train the bot's model (/privacy training on|off)",
                "",
                "/export sends you everything as a file; /forget deletes everything.",
            ]
        )

    # -- /export and /forget -------------------------------------------------------------

    async def export_command(self, ctx: Context, args: tuple[str, ...]) -> Reply:
        user = ctx.event.user.qualified
        data = await export_user_data(self.store, user, self.plugins)
        attachment = Attachment("export.json", export_json(data), "application/json")
        return Reply("Everything I keep about you is in this file.", private=True, attachment=attachment)

    async def forget_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        now = self.monotonic()
        if not args:
            self._forget_requests = {u: t for u, t in self._forget_requests.items() if t > now}
            self._forget_requests[user] = now + self.options.forget_confirm_ttl_s
            ids = await self.identities(user)
            linked = f" This includes your linked accounts: {', '.join(ids[1:])}." if len(ids) > 1 else ""
            minutes = max(1, round(self.options.forget_confirm_ttl_s / 60))
            return (
                "This permanently deletes everything I keep about you: messages, profile, memories, "
                f"consent choices and links.{linked} It cannot be undone.\n"
                f"To go ahead, send /forget confirm within {minutes} minute{'s' if minutes > 1 else ''}."
            )
        deadline = self._forget_requests.pop(user, None)
        if deadline is None or deadline < now:
            raise CommandUsageError("no pending forget", user_message="Send /forget first, then /forget confirm.")
        ctx.state["personalization.forgot"] = True
        await self.forget(user)
        return "Done. I deleted everything I kept about you."

    async def forget(self, user: str) -> tuple[list[str], dict[str, int]]:
        """Stop the user's replies in flight, then delete all their data (linked identities
        and plugins too). PluginError: a plugin's data is left, everything else is gone."""
        ids = await self.identities(user)
        for identity in ids:
            activity = self._activity.get(identity)
            if activity is not None:
                activity.forgets += 1
                for key in list(activity.keys):
                    self.app.chat.cancel(key)
            self._forget_requests.pop(identity, None)
            self._link_failures.pop(identity, None)
        return await forget_user_data(self.store, user, actor="system", plugins=self.plugins)

    # -- /recommend ----------------------------------------------------------------------

    async def recommend_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        count = self.options.recommend_default
        if args:
            try:
                count = int(args[0])
            except ValueError:
                count = 0
            if not 1 <= count <= self.options.recommend_max:
                raise CommandUsageError("bad count", user_message=f"Give a number from 1 to {self.options.recommend_max}.")
        user = ctx.event.user.qualified
        ids = await self.identities(user)
        interest = await self.group_interest(ids)
        if interest is None:
            return "Tell me a bit about yourself and what you like first, then ask again."
        lines: list[str] = []
        catalog = await self.full_catalog()
        if len(catalog):
            seen = await self._seen(ids)
            picks = catalog.recommend(
                interest, alpha=self.options.alpha, count=count, seen=seen, seen_penalty=self.options.seen_penalty
            )
            lines.append("For you:")
            lines += [f"{n}. {pick.item.title} — {pick.reason}" for n, pick in enumerate(picks, 1)]
            await self._mark_seen(user, [pick.item.id for pick in picks])
        persona = self.best_persona(interest)
        if persona is not None:
            lines.append(f"A persona that suits you: {persona.title} (/persona {persona.name})")
        return "\n".join(lines) or "I have nothing to recommend here."

    async def full_catalog(self) -> Catalog:
        """The bot file's catalog followed by the active plugins' items.

        Plugins load after this feature, and may add items later: their items are
        embedded when /recommend first sees them, and again only when they change. An
        item whose id is already taken is left out (ids key what a user was shown).
        """
        plugins = self.plugins
        items = tuple(plugins.catalog()) if plugins is not None else ()
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
        return self.app.personas.get(names[int(np.argmax(scores))])

    async def _seen(self, ids: list[str]) -> Counter[str]:
        seen: Counter[str] = Counter()
        for identity in ids:
            raw = await self.store.get_setting(user_scope(identity), SEEN_SETTING)
            seen.update(json.loads(raw) if raw else {})
        return seen

    async def _mark_seen(self, user: str, item_ids: list[str]) -> None:
        async with self._user_lock(user):
            raw = await self.store.get_setting(user_scope(user), SEEN_SETTING)
            seen = Counter(json.loads(raw) if raw else {})
            seen.update(item_ids)
            await self.store.set_setting(user_scope(user), SEEN_SETTING, json.dumps(dict(seen), ensure_ascii=False))

    # -- /link and /unlink ----------------------------------------------------------------

    async def link_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        minutes = max(1, round(self.options.link_code_ttl_s / 60))
        if not args:
            code = await self.links.issue(user)
            return (
                f"Your link code: {code}\nOn your other account (Telegram or Discord), send /link {code} "
                f"within {minutes} minutes. It works once. Linked accounts share one profile and memories."
            )
        refusal = CommandUsageError(
            "link code refused",
            user_message=f"That code is not valid. Codes work once and expire after {minutes} minutes; send /link for a new one.",
        )
        now = self.monotonic()
        failures = self._link_failures.get(user, deque())
        while failures and failures[0] < now - 3600:
            failures.popleft()
        if len(failures) >= self.options.link_attempts_per_hour:
            raise CommandUsageError("too many link attempts", user_message="Too many wrong codes. Try again in an hour.")
        owner = await self.links.redeem(args[0])
        if owner is None or owner == user:
            failures.append(now)
            self._link_failures[user] = failures
            raise refusal
        self._link_failures.pop(user, None)
        group = await self.store.link_identities(owner, user)
        profiles = [await self.store.get_profile(identity) for identity in [owner] + [g for g in group if g != owner]]
        preferences, consent = merge_linked(profiles, self.options.memory_default)
        await self.update_profiles(
            group, lambda p: dataclasses.replace(p, preferences=dict(preferences), consent=dict(consent))
        )
        await self.store.audit(user, "link", owner)
        others = ", ".join(identity for identity in group if identity != user)
        return f"Linked with {others}. You now share one profile and your memories across these accounts."

    async def unlink_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.identities(user)
        if len(ids) < 2:
            raise NotFound(f"{user} not linked", user_message="This account is not linked to another one.")
        await self.store.unlink_identity(user)
        await self.store.audit(user, "unlink", ", ".join(ids[1:]))
        return (
            f"Unlinked from {', '.join(ids[1:])}. Each account keeps the memories learned on it "
            "and a copy of the shared preferences."
        )

    def commands(self) -> list[CommandSpec]:
        owner = "personalization"
        return [
            CommandSpec(
                "profile",
                "Show or set your preferences (name, language, length, tone)",
                self.profile_command,
                (
                    ArgSpec("action", "set or clear a preference", choices=("set", "clear")),
                    ArgSpec("field", "which preference", choices=FIELDS),
                    ArgSpec("value", "the new value", rest=True),
                ),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "memory",
                "List what I remember about you, or forget one fact",
                self.memory_command,
                (ArgSpec("action", "list or forget", choices=("list", "forget")), ArgSpec("id", "memory id from the list")),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "forget",
                "Delete everything I keep about you (asks to confirm)",
                self.forget_command,
                (ArgSpec("confirm", "type confirm to delete", choices=("confirm",)),),
                private=True,
                owner=owner,
            ),
            CommandSpec("export", "Get everything I keep about you as a file", self.export_command, private=True, owner=owner),
            CommandSpec(
                "recommend",
                "Suggestions picked for your interests",
                self.recommend_command,
                (ArgSpec("count", f"how many (1-{self.options.recommend_max})"),),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "privacy",
                "What I keep, and your choices (memory, groups, training)",
                self.privacy_command,
                (
                    ArgSpec("setting", "which choice", choices=tuple(PRIVACY_SETTINGS)),
                    ArgSpec("value", "on or off", choices=("on", "off")),
                ),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "link",
                "Link your accounts on other platforms (gives or takes a code)",
                self.link_command,
                (ArgSpec("code", "the code from your other account"),),
                private=True,
                owner=owner,
            ),
            CommandSpec("unlink", "Unlink this account from your others", self.unlink_command, private=True, owner=owner),
        ]


_CONSENT_EFFECT = {
    "memory": {
        True: "I'll learn facts and interests from your messages.",
        False: "I won't learn from your messages or use what I remember (it stays until /memory forget or /forget).",
    },
    "groups": {
        True: "What you told me in private chats may be used in group chats.",
        False: "What you told me in private chats stays out of group chats.",
    },
    "training": {
        True: "Your conversations may be used to train the bot's model.",
        False: "Your conversations won't be used for training.",
    },
}
assert set(_CONSENT_EFFECT) == set(PRIVACY_SETTINGS) and set(PRIVACY_SETTINGS.values()) == set(CONSENT_FLAGS)


def _date(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


async def setup_personalization(app: "App", stack: AsyncExitStack) -> None:
    """Feature entry point (add to core.app.FEATURES)."""
    options, items = load_personalization(app.settings)
    if not options.enabled:
        return
    if app.embedder is None:
        from core.personalization.embedder import SentenceTransformerEmbedder

        app.embedder = await SentenceTransformerEmbedder.load(options.embedder, batch_size=options.embed_batch_size)
    catalog = await Catalog.build(items, app.embedder)
    personas = app.personas.all()
    vectors = await app.embedder.embed([f"{p.title}. {p.description} {p.style}" for p in personas])
    feature = Personalization(app, options, catalog, dict(zip([p.name for p in personas], vectors)))
    app.commands.extend(feature.commands())
    app.chat.contributors.append(feature.contribute)
    app.chat.observers.append(feature.observe)
    app.dispatcher.middlewares.append(feature.track_turns)
    app.personalization = feature  # type: ignore[attr-defined]
    days = app.settings.storage.retention_days
    if days:
        await apply_retention(app.store, days)  # before the first message is answered
        task = asyncio.create_task(retention_loop(app.store, days, options.retention_check_s), name="retention")

        async def stop_retention() -> None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop_retention)
