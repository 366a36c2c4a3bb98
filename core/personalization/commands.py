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
from core.i18n import N_, _, _n
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
            return await self._describe_profile(ctx, ids)
        action = args[0].lower()
        if len(args) < 2:
            usage = f"/profile {action} {'|'.join(FIELDS)}" + (" VALUE" if action == "set" else "")
            raise CommandUsageError("field missing", user_message=_("Usage: {usage}", usage=usage))
        field = args[1].lower()
        if action == "set":
            if len(args) < 3:
                raise CommandUsageError("value missing", user_message=_("Usage: {usage}", usage=f"/profile set {field} VALUE"))
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
            return ctx.t("Cleared your {field}.", field=field)
        return ctx.t("Saved: {field} = {value}.", field=field, value=ctx.t(describe_preference(field, value)))

    async def _describe_profile(self, ctx: Context, ids: list[str]) -> str:
        own = await self.svc.store.get_profile(ids[0])
        users = [u for u in [await self.svc.store.get_user(identity) for identity in ids] if u is not None]
        memories = await self.svc.group_memories(ids)
        prefs = " · ".join(f"{field}: {ctx.t(describe_preference(field, own.preferences.get(field)))}" for field in FIELDS)
        lines = [ctx.t("Your profile ({user})", user=ids[0])]
        if len(ids) > 1:
            lines.append(ctx.t("Linked accounts: {accounts}", accounts=", ".join(ids[1:])))
        lines.append(prefs)
        if users:
            first = min(u.first_seen for u in users)
            last = max(u.last_seen for u in users)
            lines.append(
                ctx.t(
                    "Messages: {count} · first seen {first} · last seen {last}",
                    count=sum(u.message_count for u in users), first=_date(first), last=_date(last),
                )
            )
        learned = sum([(await self.svc.store.get_profile(i)).interest_count for i in ids])
        lines.append(
            ctx.t("Memories: {count} (/memory)", count=len(memories)) + " · "
            + ctx.nt("interests learned from {n} message", "interests learned from {n} messages", learned)
        )
        lines.append(
            ctx.t("Privacy:") + " "
            + ", ".join(f"{name} {_on_off(ctx, self.svc.consent(own, flag))}" for name, flag in PRIVACY_SETTINGS.items())
            + " (/privacy)"
        )
        lines.append(ctx.t("Change: {set} · {clear}", set=f"/profile set {'|'.join(FIELDS)} VALUE", clear="/profile clear FIELD"))
        return "\n".join(lines)

    # -- /memory -------------------------------------------------------------------------

    async def memory_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        memories = await self.svc.group_memories(ids)
        if args and args[0].lower() == "forget":
            if len(args) < 2:
                raise CommandUsageError("id missing", user_message=_("Usage: /memory forget ID (see /memory for ids)"))
            try:
                memory_id = int(args[1].lstrip("#"))
            except ValueError:
                raise CommandUsageError("bad id", user_message=_("Usage: /memory forget ID (a number from /memory)")) from None
            for identity in ids:
                async with self.svc.user_lock(identity):
                    if await self.svc.store.delete_memory(identity, memory_id):
                        return ctx.t("Forgot memory #{id}.", id=memory_id)
            raise NotFound(f"memory {memory_id} of {user}", user_message=_("You have no memory #{id}.", id=memory_id))
        if not memories:
            text = ctx.t("I don't remember anything about you yet.")
        else:
            private = " " + ctx.t("(from a private chat)")
            lines = [f"#{m.id} {m.text} · " + ctx.t("learned {date}", date=_when(m.created_at))
                     + (private if m.scope == "private" else "") for m in memories]
            text = ctx.t("What I remember about you:") + "\n" + "\n".join(lines) + "\n\n" + ctx.t("Remove one with /memory forget ID.")
        own = await self.svc.store.get_profile(user)
        if not self.svc.consent(own, "memory"):
            text += "\n" + ctx.t("Memory is off: I don't learn new facts or use these (/privacy memory on).")
        return text

    # -- /privacy ------------------------------------------------------------------------

    async def privacy_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        if not args:
            return await self._explain_privacy(ctx, ids)
        if len(args) < 2:
            raise CommandUsageError("value missing", user_message=_("Usage: /privacy memory|groups|training on|off"))
        name, value = args[0].lower(), args[1].lower() == "on"
        flag = PRIVACY_SETTINGS[name]

        def change(profile: Profile) -> Profile:
            return dataclasses.replace(profile, consent={**profile.consent, flag: value})

        await self.svc.update_profiles(ids, change)
        await self.svc.store.audit(user, f"privacy {name}", user, detail={"value": value})
        return f"{name}: {_on_off(ctx, value)}. " + ctx.t(_CONSENT_EFFECT[name][value])

    async def _explain_privacy(self, ctx: Context, ids: list[str]) -> str:
        own = await self.svc.store.get_profile(ids[0])
        days = self.svc.settings.storage.retention_days
        kept = ctx.nt("deleted after {n} day", "deleted after {n} days", days) if days else ctx.t("kept until you delete them")
        state = {name: _on_off(ctx, self.svc.consent(own, flag)) for name, flag in PRIVACY_SETTINGS.items()}
        return "\n".join(
            [
                ctx.t("What I keep about you:"),
                ctx.t("• your messages and my replies ({kept});", kept=kept),
                ctx.t("• your profile: the preferences you set (/profile), message counts, first and last seen,"),
                ctx.t("  and an interest vector learned from your messages (used for /recommend);"),
                ctx.t("• memories: facts you tell me about yourself (/memory);"),
                ctx.t("• accounts you linked (/link)."),
                ctx.t("Your memories are only used when I reply to you."),
                "",
                ctx.t("Your choices:"),
                ctx.t("• memory: {state} — learn facts and interests from your messages (/privacy memory on|off)", state=state["memory"]),
                ctx.t(
                    "• groups: {state} — use what you told me in private chats in group chats (/privacy groups on|off)",
                    state=state["groups"],
                ),
                ctx.t(
                    "• training: {state} — let your conversations train the bot's model (/privacy training on|off)",
                    state=state["training"],
                ),
                "",
                ctx.t("/export sends you everything as a file; /forget deletes everything."),
            ]
        )

    # -- /export and /forget -------------------------------------------------------------

    async def export_command(self, ctx: Context, args: tuple[str, ...]) -> Reply:
        user = ctx.event.user.qualified
        data = await export_user_data(self.svc.store, user, self.svc.user_data_holders())
        attachment = Attachment("export.json", export_json(data), "application/json")
        return Reply(ctx.t("Everything I keep about you is in this file."), private=True, attachment=attachment)

    async def forget_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        if not args:
            await self.svc.request_forget(user)
            ids = await self.svc.identities(user)
            linked = " " + ctx.t("This includes your linked accounts: {accounts}.", accounts=", ".join(ids[1:])) if len(ids) > 1 else ""
            minutes = max(1, round(self.svc.options.forget_confirm_ttl_s / 60))
            return (
                ctx.t("This permanently deletes everything I keep about you: messages, profile, memories, consent choices and links.")
                + linked + " " + ctx.t("It cannot be undone.") + "\n"
                + ctx.nt("To go ahead, send /forget confirm within {n} minute.", "To go ahead, send /forget confirm within {n} minutes.", minutes)
            )
        if not await self.svc.take_forget_request(user):
            raise CommandUsageError("no pending forget", user_message=_("Send /forget first, then /forget confirm."))
        ctx.state[STATE_FORGOT] = True
        await self.svc.forget(user, actor=SELF_ACTOR)
        return ctx.t("Done. I deleted everything I kept about you.")

    # -- /recommend ----------------------------------------------------------------------

    async def recommend_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        count = self.svc.options.recommend_default
        if args:
            try:
                count = int(args[0])
            except ValueError:
                count = 0
            if not 1 <= count <= self.svc.options.recommend_max:
                raise CommandUsageError("bad count", user_message=_("Give a number from 1 to {most}.", most=self.svc.options.recommend_max))
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        interest = await self.svc.group_interest(ids)
        if interest is None:
            return ctx.t("Tell me a bit about yourself and what you like first, then ask again.")
        lines: list[str] = []
        catalog = await self.svc.full_catalog()
        if len(catalog):
            seen = await self.svc.seen_items(ids)
            picks = catalog.recommend(
                interest, alpha=self.svc.options.alpha, count=count, seen=seen, seen_penalty=self.svc.options.seen_penalty
            )
            lines.append(ctx.t("For you:"))
            lines += [f"{n}. {pick.item.title} — {pick.reason}" for n, pick in enumerate(picks, 1)]
            await self.svc.mark_seen(user, [pick.item.id for pick in picks])
        persona = self.svc.best_persona(interest)
        if persona is not None:
            lines.append(ctx.t("A persona that suits you: {title} (/persona {name})", title=persona.title, name=persona.name))
        return "\n".join(lines) or ctx.t("I have nothing to recommend here.")

    # -- /link and /unlink ----------------------------------------------------------------

    async def link_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        minutes = max(1, round(self.svc.options.link_code_ttl_s / 60))
        if not args:
            code = await self.svc.links.issue(user)
            return ctx.t("Your link code: {code}", code=code) + "\n" + ctx.nt(
                "On your other account (Telegram or Discord), send /link {code} within {n} minute."
                " It works once. Linked accounts share one profile and memories.",
                "On your other account (Telegram or Discord), send /link {code} within {n} minutes."
                " It works once. Linked accounts share one profile and memories.",
                minutes,
                code=code,
            )
        refusal = CommandUsageError(
            "link code refused",
            user_message=_n(
                "That code is not valid. Codes work once and expire after {n} minute; send /link for a new one.",
                "That code is not valid. Codes work once and expire after {n} minutes; send /link for a new one.",
                minutes,
            ),
        )
        now = self.svc.monotonic()
        failures = self.svc.link_failures.get(user, deque())
        while failures and failures[0] < now - 3600:
            failures.popleft()
        if len(failures) >= self.svc.options.link_attempts_per_hour:
            raise CommandUsageError("too many link attempts", user_message=_("Too many wrong codes. Try again in an hour."))
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
        return ctx.t("Linked with {others}. You now share one profile and your memories across these accounts.", others=others)

    async def unlink_command(self, ctx: Context, args: tuple[str, ...]) -> str:
        user = ctx.event.user.qualified
        ids = await self.svc.identities(user)
        if len(ids) < 2:
            raise NotFound(f"{user} not linked", user_message=_("This account is not linked to another one."))
        await self.svc.store.unlink_identity(user)
        await self.svc.store.audit(user, "unlink", ", ".join(ids[1:]))
        return ctx.t(
            "Unlinked from {others}. Each account keeps the memories learned on it and a copy of the shared preferences.",
            others=", ".join(ids[1:]),
        )

    def specs(self) -> list[CommandSpec]:
        owner = "personalization"
        return [
            CommandSpec(
                "profile",
                N_("Show or set your preferences (name, language, length, tone)"),
                self.profile_command,
                (
                    ArgSpec("action", N_("set or clear a preference"), choices=("set", "clear")),
                    ArgSpec("field", N_("which preference"), choices=FIELDS),
                    ArgSpec("value", N_("the new value"), rest=True),
                ),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "memory",
                N_("List what I remember about you, or forget one fact"),
                self.memory_command,
                (ArgSpec("action", N_("list or forget"), choices=("list", "forget")), ArgSpec("id", N_("memory id from the list"))),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "forget",
                N_("Delete everything I keep about you (asks to confirm)"),
                self.forget_command,
                (ArgSpec("confirm", N_("type confirm to delete"), choices=("confirm",)),),
                private=True,
                owner=owner,
            ),
            CommandSpec("export", N_("Get everything I keep about you as a file"), self.export_command, private=True, owner=owner),
            CommandSpec(
                "recommend",
                N_("Suggestions picked for your interests"),
                self.recommend_command,
                (ArgSpec("count", N_("how many to suggest")),),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "privacy",
                N_("What I keep, and your choices (memory, groups, training)"),
                self.privacy_command,
                (
                    ArgSpec("setting", N_("which choice"), choices=tuple(PRIVACY_SETTINGS)),
                    ArgSpec("value", N_("on or off"), choices=("on", "off")),
                ),
                private=True,
                owner=owner,
            ),
            CommandSpec(
                "link",
                N_("Link your accounts on other platforms (gives or takes a code)"),
                self.link_command,
                (ArgSpec("code", N_("the code from your other account")),),
                private=True,
                owner=owner,
            ),
            CommandSpec("unlink", N_("Unlink this account from your others"), self.unlink_command, private=True, owner=owner),
        ]


_CONSENT_EFFECT = {
    "memory": {
        True: N_("I'll learn facts and interests from your messages."),
        False: N_("I won't learn from your messages or use what I remember (it stays until /memory forget or /forget)."),
    },
    "groups": {
        True: N_("What you told me in private chats may be used in group chats."),
        False: N_("What you told me in private chats stays out of group chats."),
    },
    "training": {
        True: N_("Your conversations may be used to train the bot's model."),
        False: N_("Your conversations won't be used for training."),
    },
}
assert set(_CONSENT_EFFECT) == set(PRIVACY_SETTINGS) and set(PRIVACY_SETTINGS.values()) == set(CONSENT_FLAGS)


def _on_off(ctx: Context, value: bool) -> str:
    return ctx.t("on") if value else ctx.t("off")


def _date(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
