"""The personalization chat commands: /profile /memory /privacy /export /forget
/recommend /link /unlink, with their texts. They act through the service."""

from __future__ import annotations

import dataclasses
import time
from collections import deque

from core.commands import ArgSpec, CommandSpec
from core.dispatcher import Context
from core.errors import CommandUsageError, NotFound
from core.events import Attachment, Reply
from core.personalization.privacy import export_json, export_user_data
from core.personalization.profiles import (
    CONSENT_FLAGS,
    FIELDS,
    PRIVACY_SETTINGS,
    describe_preference,
    merge_linked,
    validate_preference,
)
from core.personalization.service import STATE_FORGOT, Personalization

SELF_ACTOR = "self"  # the audit actor of a user's own /forget: the record outlives the id, so it names nobody
from core.records import Profile


class PersonalizationCommands:
    def __init__(self, svc: Personalization) -> None:
        self.svc = svc

    # -- /profile ------------------------------------------------------------------------

    async def profile_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
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

        await self.svc.update_profiles(ids, change)
        if value is None:
            return f"Cleared your {field}."
        return f"Saved: {field} = {describe_preference(field, value)}."

    async def _describe_profile(self, ids: list[str]) -> str:
        own = await self.svc.store.get_profile(ids[0])
        users = [u for u in [await self.svc.store.get_user(identity) for identity in ids] if u is not None]
        memories = await self.svc.group_memories(ids)
        prefs = " · ".join(f"{field}: {describe_preference(field, own.preferences.get(field))}" for field in FIELDS)
        lines = [f"Your profile ({ids[0]})"]
        if len(ids) > 1:
            lines.append(f"Linked accounts: {', '.join(ids[1:])}")
        lines.append(prefs)
        if users:
            first = min(u.first_seen for u in users)
            last = max(u.last_seen for u in users)
            lines.append(f"Messages: {sum(u.message_count for u in users)} · first seen {_date(first)} · last seen {_date(last)}")
        learned = sum([(await self.svc.store.get_profile(i)).interest_count for i in ids])
        lines.append(f"Memories: {len(memories)} (/memory) · interests learned from {learned} message{'' if learned == 1 else 's'}")
        lines.append(
            "Privacy: " + ", ".join(f"{name} {'on' if self.svc.consent(own, flag) else 'off'}" for name, flag in PRIVACY_SETTINGS.items())
            + " (/privacy)"
        )
        lines.append(f"Change: /profile set {'|'.join(FIELDS)} VALUE · /profile clear FIELD")
        return "\n".join(lines)

    # -- /memory -------------------------------------------------------------------------

    async def memory_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        memories = await self.svc.group_memories(ids)
        if args and args[0].lower() == "forget":
            if len(args) < 2:
                raise CommandUsageError("id missing", user_message="Usage: /memory forget ID (see /memory for ids)")
            try:
                memory_id = int(args[1].lstrip("#"))
            except ValueError:
                raise CommandUsageError("bad id", user_message="Usage: /memory forget ID (a number from /memory)") from None
            for identity in ids:
                async with self.svc.user_lock(identity):
                    if await self.svc.store.delete_memory(identity, memory_id):
                        return f"Forgot memory #{memory_id}."
            raise NotFound(f"memory {memory_id} of {user}", user_message=f"You have no memory #{memory_id}.")
        if not memories:
            text = "I don't remember anything about you yet."
        else:
            lines = [f"#{m.id} {m.text} · learned {_when(m.created_at)}" + (" (from a private chat)" if m.scope == "private" else "")
                     for m in memories]
            text = "What I remember about you:\n" + "\n".join(lines) + "\n\nRemove one with /memory forget ID."
        own = await self.svc.store.get_profile(user)
        if not self.svc.consent(own, "memory"):
            text += "\nMemory is off: I don't learn new facts or use these (/privacy memory on)."
        return text

    # -- /privacy ------------------------------------------------------------------------

    async def privacy_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        if not args:
            return await self._explain_privacy(ids)
        if len(args) < 2:
            raise CommandUsageError("value missing", user_message="Usage: /privacy memory|groups|training on|off")
        name, value = args[0].lower(), args[1].lower() == "on"
        flag = PRIVACY_SETTINGS[name]

        def change(profile: Profile) -> Profile:
            return dataclasses.replace(profile, consent={**profile.consent, flag: value})

        await self.svc.update_profiles(ids, change)
        await self.svc.store.audit(user, f"privacy {name}", user, detail={"value": value})
        return f"{name}: {'on' if value else 'off'}. " + _CONSENT_EFFECT[name][value]

    async def _explain_privacy(self, ids: list[str]) -> str:
        own = await self.svc.store.get_profile(ids[0])
        days = self.svc.settings.storage.retention_days
        kept = f"deleted after {days} days" if days else "kept until you delete them"
        state = {name: "on" if self.svc.consent(own, flag) else "off" for name, flag in PRIVACY_SETTINGS.items()}
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
        data = await export_user_data(self.svc.store, user, self.svc.user_data_holders())
        attachment = Attachment("export.json", export_json(data), "application/json")
        return Reply("Everything I keep about you is in this file.", private=True, attachment=attachment)

    async def forget_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        if not args:
            await self.svc.request_forget(user)
            ids = await self.svc.identities(user)
            linked = f" This includes your linked accounts: {', '.join(ids[1:])}." if len(ids) > 1 else ""
            minutes = max(1, round(self.svc.options.forget_confirm_ttl_s / 60))
            return (
                "This permanently deletes everything I keep about you: messages, profile, memories, "
                f"consent choices and links.{linked} It cannot be undone.\n"
                f"To go ahead, send /forget confirm within {minutes} minute{'s' if minutes > 1 else ''}."
            )
        if not await self.svc.take_forget_request(user):
            raise CommandUsageError("no pending forget", user_message="Send /forget first, then /forget confirm.")
        ctx.state[STATE_FORGOT] = True
        await self.svc.forget(user, actor=SELF_ACTOR)
        return "Done. I deleted everything I kept about you."

    # -- /recommend ----------------------------------------------------------------------

    async def recommend_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        count = self.svc.options.recommend_default
        if args:
            try:
                count = int(args[0])
            except ValueError:
                count = 0
            if not 1 <= count <= self.svc.options.recommend_max:
                raise CommandUsageError("bad count", user_message=f"Give a number from 1 to {self.svc.options.recommend_max}.")
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        interest = await self.svc.group_interest(ids)
        if interest is None:
            return "Tell me a bit about yourself and what you like first, then ask again."
        lines: list[str] = []
        catalog = await self.svc.full_catalog()
        if len(catalog):
            seen = await self.svc.seen_items(ids)
            picks = catalog.recommend(
                interest, alpha=self.svc.options.alpha, count=count, seen=seen, seen_penalty=self.svc.options.seen_penalty
            )
            lines.append("For you:")
            lines += [f"{n}. {pick.item.title} — {pick.reason}" for n, pick in enumerate(picks, 1)]
            await self.svc.mark_seen(user, [pick.item.id for pick in picks])
        persona = self.svc.best_persona(interest)
        if persona is not None:
            lines.append(f"A persona that suits you: {persona.title} (/persona {persona.name})")
        return "\n".join(lines) or "I have nothing to recommend here."

    # -- /link and /unlink ----------------------------------------------------------------

    async def link_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        minutes = max(1, round(self.svc.options.link_code_ttl_s / 60))
        if not args:
            code = await self.svc.links.issue(user)
            return (
                f"Your link code: {code}\nOn your other account (Telegram or Discord), send /link {code} "
                f"within {minutes} minutes. It works once. Linked accounts share one profile and memories."
            )
        refusal = CommandUsageError(
            "link code refused",
            user_message=f"That code is not valid. Codes work once and expire after {minutes} minutes; send /link for a new one.",
        )
        now = self.svc.monotonic()
        failures = self.svc.link_failures.get(user, deque())
        while failures and failures[0] < now - 3600:
            failures.popleft()
        if len(failures) >= self.svc.options.link_attempts_per_hour:
            raise CommandUsageError("too many link attempts", user_message="Too many wrong codes. Try again in an hour.")
        owner = await self.svc.links.redeem(args[0])
        if owner is None or owner == user:
            failures.append(now)
            self.svc.link_failures[user] = failures
            raise refusal
        self.svc.link_failures.pop(user, None)
        group = await self.svc.store.link_identities(owner, user)
        profiles = [await self.svc.store.get_profile(identity) for identity in [owner] + [g for g in group if g != owner]]
        preferences, consent = merge_linked(profiles, self.svc.options.memory_default)
        await self.svc.update_profiles(
            group, lambda p: dataclasses.replace(p, preferences=dict(preferences), consent=dict(consent))
        )
        await self.svc.store.audit(user, "link", owner)
        others = ", ".join(identity for identity in group if identity != user)
        return f"Linked with {others}. You now share one profile and your memories across these accounts."

    async def unlink_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        if len(ids) < 2:
            raise NotFound(f"{user} not linked", user_message="This account is not linked to another one.")
        await self.svc.store.unlink_identity(user)
        await self.svc.store.audit(user, "unlink", ", ".join(ids[1:]))
        return (
            f"Unlinked from {', '.join(ids[1:])}. Each account keeps the memories learned on it "
            "and a copy of the shared preferences."
        )

    def specs(self) -> list[CommandSpec]:
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
                (ArgSpec("count", f"how many (1-{self.svc.options.recommend_max})"),),
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


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
