"""The commands every bot has. Declared as data (bound to one bot by :func:`builtin_commands`); adapters publish them."""

from __future__ import annotations

import dataclasses
from functools import partial
from importlib.metadata import PackageNotFoundError, version

from core.chat import chat_scope, space_scope
from core.commands import ArgSpec, CommandSpec
from core.dispatcher import Context
from core.errors import CommandUsageError, NotFound, PermissionDenied
from core.events import ChatKind, UserRef
from core.i18n import N_, _
from core.persona_precedence import BY, CONVERSATION_BY, persona_source
from core.runtime import Runtime


def _version() -> str:
    try:
        return version("personabot")
    except PackageNotFoundError:
        return "dev"


async def start(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    conversation = await bot.store.active_conversation(ctx.event.key)
    persona = (await bot.chat.resolve_persona(ctx.event, conversation)).localized(ctx.locale)
    return persona.greeting + "\n\n" + ctx.t("Send /help to see what I can do.")


async def help_command(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    lines = [ctx.t("Commands:")]
    lines += [f"{spec.usage} — {ctx.t(spec.description)}" for spec in bot.commands.user_commands()]
    if bot.is_chat_admin(ctx.event):  # a chat's own admins see the commands they may run there
        admin = bot.is_admin(ctx.event)
        lines += ["", ctx.t("Admin commands:")]
        lines += [f"{spec.usage} — {ctx.t(spec.description)}" for spec in bot.commands.admin_commands()
                  if admin or spec.chat_admin]
    return "\n".join(lines)


async def persona_command(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    event = ctx.event
    conversation = await bot.store.active_conversation(event.key)
    if not args:
        current = (await bot.chat.resolve_persona(event, conversation)).localized(ctx.locale)
        others = ", ".join(name for name in bot.personas.names() if name != current.name)
        shown = ctx.t(
            "Current persona: {title} ({name}) — {description}\nOthers: {others}",
            title=current.title, name=current.name, description=current.description, others=others,
        )
        return shown + "\n" + ctx.t(await persona_source(bot.store, bot.personas, bot.settings, event, conversation))
    persona = bot.personas.get(args[0]).localized(ctx.locale)
    group = event.chat_kind is ChatKind.GROUP
    if group and not bot.settings.personas.members_switch_in_groups and not bot.is_chat_admin(event):
        source = await persona_source(bot.store, bot.personas, bot.settings, event, conversation)
        raise PermissionDenied(
            f"{event.user} may not switch the persona of {event.key}",
            user_message=_("In this group only admins switch the persona. {source}", source=source),
        )
    await bot.store.set_conversation_persona(conversation.id, persona.name)
    if group:
        await bot.store.set_setting(chat_scope(event), CONVERSATION_BY, event.user.qualified)
    else:
        profile = await bot.store.get_profile(event.user.qualified)
        preferences = dict(profile.preferences, persona=persona.name)
        await bot.store.save_profile(dataclasses.replace(profile, preferences=preferences))
    return ctx.t("Now talking as {title}.", title=persona.title) + " " + persona.greeting


async def reset(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    bot.chat.cancel(ctx.event.key.qualified)
    await bot.store.reset_conversation(ctx.event.key)
    return ctx.t("Started a new conversation. I won't use what we said before.")


async def about(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    settings = bot.settings
    model = settings.model
    model_name = model.model if model.backend == "openai" else model.path
    details = ctx.t(
        "Model: {model} ({backend}). Personas: {personas}.",
        model=model_name, backend=model.backend, personas=", ".join(bot.personas.names()),
    )
    return f"{settings.name} — personabot {_version()}\n{settings.description}\n{details}".replace("\n\n", "\n")


async def admin_stats(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    stats = await bot.store.stats()
    health = await bot.generator.health()
    lines = [f"{name}: {value}" for name, value in sorted(stats.items())]
    lines += [ctx.t("model {name}: {value}", name=name, value=value) for name, value in sorted(health.items())]
    return "\n".join(lines)


async def admin_persona_default(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    persona = bot.personas.get(args[0])
    where = args[1] if len(args) > 1 else "chat"
    event = ctx.event
    scope = {"bot": "bot", "chat": chat_scope(event), "server": space_scope(event)}[where]
    if where != "chat" and not bot.is_admin(event):  # a chat's own admins set this chat only
        await bot.store.audit(event.user.qualified, "admin persona-default", f"{persona.name} {where}", outcome="denied")
        raise PermissionDenied(f"{event.user} is not a bot admin", user_message=_("Only the bot's admins can do that."))
    if scope is None:
        raise CommandUsageError("no server here", user_message=_("This chat is not in a server; use 'chat' or 'bot'."))
    await bot.store.set_setting(scope, "persona", persona.name)
    await bot.store.set_setting(scope, BY, event.user.qualified)
    conversation = await bot.store.active_conversation(event.key)
    if where == "chat" and conversation.persona:  # a member's earlier switch no longer hides the admin's default
        await bot.store.set_conversation_persona(conversation.id, None)
        await bot.store.set_setting(scope, CONVERSATION_BY, None)
        conversation = await bot.store.active_conversation(event.key)
    source = await persona_source(bot.store, bot.personas, bot.settings, event, conversation)
    return ctx.t(_WHERE[where], title=persona.title) + " " + ctx.t(source)


def _target_user(ctx: Context, raw: str) -> str:
    """``telegram:42`` as given, or a bare id on the caller's platform."""
    try:
        return UserRef.parse(raw).qualified if ":" in raw else UserRef(ctx.event.user.platform, raw).qualified
    except ValueError:
        raise CommandUsageError(f"bad user id {raw!r}", user_message=_("Give a user id like telegram:123.")) from None


async def admin_ban(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    user = _target_user(ctx, args[0])
    if user == ctx.event.user.qualified:
        raise CommandUsageError("self-ban", user_message=_("You can't ban yourself."))
    await bot.store.set_banned(user, True)
    return ctx.t("Banned {user}. The bot will ignore them.", user=user)


async def admin_unban(bot: Runtime, ctx: Context, args: tuple[str, ...]) -> str:
    user = _target_user(ctx, args[0])
    if not await bot.store.is_banned(user):
        raise NotFound(f"{user} not banned", user_message=_("{user} is not banned.", user=user))
    await bot.store.set_banned(user, False)
    return ctx.t("Unbanned {user}.", user=user)


_USER = ArgSpec("user", N_("platform-qualified user id, e.g. telegram:123"), required=True)
_WHERE = {
    "chat": N_("Default persona for this chat is now {title}."),
    "server": N_("Default persona for this server is now {title}."),
    "bot": N_("Default persona for this bot is now {title}."),
}


def builtin_commands(bot: Runtime) -> list[CommandSpec]:
    """The built-in commands, their handlers bound to ``bot``."""
    return [
        CommandSpec("start", N_("Say hello and show what I can do"), partial(start, bot)),
        CommandSpec("help", N_("List the commands"), partial(help_command, bot), private=True),
        CommandSpec("persona", N_("Show or switch the persona"), partial(persona_command, bot), (ArgSpec("name", N_("persona to use")),)),
        CommandSpec("reset", N_("Start a new conversation"), partial(reset, bot)),
        CommandSpec("about", N_("About this bot"), partial(about, bot)),
        CommandSpec("stats", N_("Usage statistics"), partial(admin_stats, bot), admin_only=True, private=True),
        CommandSpec(
            "persona-default",
            N_("Set the default persona for this chat, server or bot"),
            partial(admin_persona_default, bot),
            (ArgSpec("name", N_("persona"), required=True), ArgSpec("scope", N_("where"), choices=("chat", "server", "bot"))),
            admin_only=True,
            chat_admin=True,  # for the chat it is typed in; server and bot scopes need a bot admin
        ),
        CommandSpec("ban", N_("Ignore a user on every platform"), partial(admin_ban, bot), (_USER,), admin_only=True, private=True),
        CommandSpec("unban", N_("Stop ignoring a user"), partial(admin_unban, bot), (_USER,), admin_only=True, private=True),
    ]
