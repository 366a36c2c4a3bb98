"""The commands every bot has. Declared as data; adapters publish them."""

from __future__ import annotations

import dataclasses
from importlib.metadata import PackageNotFoundError, version

from core.chat import chat_scope, space_scope
from core.commands import ArgSpec, CommandSpec
from core.dispatcher import Context
from core.errors import CommandUsageError, NotFound
from core.events import ChatKind, UserRef


def _version() -> str:
    try:
        return version("personabot")
    except PackageNotFoundError:
        return "dev"


async def start(ctx: Context, args: tuple[str, ...]) -> str:
    conversation = await ctx.app.store.active_conversation(ctx.event.key)
    persona = await ctx.app.chat.resolve_persona(ctx.event, conversation)
    return f"{persona.greeting}\n\nSend /help to see what I can do."


async def help_command(ctx: Context, args: tuple[str, ...]) -> str:
    lines = ["Commands:"]
    lines += [f"{spec.usage} — {spec.description}" for spec in ctx.app.commands.user_commands()]
    if ctx.app.is_admin(ctx.event):
        lines += ["", "Admin commands:"]
        lines += [f"{spec.usage} — {spec.description}" for spec in ctx.app.commands.admin_commands()]
    return "\n".join(lines)


async def persona_command(ctx: Context, args: tuple[str, ...]) -> str:
    app, event = ctx.app, ctx.event
    conversation = await app.store.active_conversation(event.key)
    if not args:
        current = await app.chat.resolve_persona(event, conversation)
        others = ", ".join(name for name in app.personas.names() if name != current.name)
        return f"Current persona: {current.title} ({current.name}) — {current.description}\nOthers: {others}"
    persona = app.personas.get(args[0])
    await app.store.set_conversation_persona(conversation.id, persona.name)
    if event.chat_kind is not ChatKind.GROUP:
        profile = await app.store.get_profile(event.user.qualified)
        preferences = dict(profile.preferences, persona=persona.name)
        await app.store.save_profile(dataclasses.replace(profile, preferences=preferences))
    return f"Now talking as {persona.title}. {persona.greeting}"


async def reset(ctx: Context, args: tuple[str, ...]) -> str:
    ctx.app.chat.cancel(ctx.event.key.qualified)
    await ctx.app.store.reset_conversation(ctx.event.key)
    return "Started a new conversation. I won't use what we said before."


async def about(ctx: Context, args: tuple[str, ...]) -> str:
    settings = ctx.app.settings
    model = settings.model
    model_name = model.model if model.backend == "openai" else model.path
    return (
        f"{settings.name} — personabot {_version()}\n{settings.description}\n"
        f"Model: {model_name} ({model.backend}). Personas: {', '.join(ctx.app.personas.names())}."
    ).replace("\n\n", "\n")


async def admin_stats(ctx: Context, args: tuple[str, ...]) -> str:
    stats = await ctx.app.store.stats()
    health = await ctx.app.generator.health()
    lines = [f"{name}: {value}" for name, value in sorted(stats.items())]
    lines += [f"model {name}: {value}" for name, value in sorted(health.items())]
    return "\n".join(lines)


async def admin_persona_default(ctx: Context, args: tuple[str, ...]) -> str:
    persona = ctx.app.personas.get(args[0])
    where = args[1] if len(args) > 1 else "chat"
    event = ctx.event
    scope = {"bot": "bot", "chat": chat_scope(event), "server": space_scope(event)}[where]
    if scope is None:
        raise CommandUsageError("no server here", user_message="This chat is not in a server; use 'chat' or 'bot'.")
    await ctx.app.store.set_setting(scope, "persona", persona.name)
    return f"Default persona for this {where} is now {persona.title}."


def _target_user(ctx: Context, raw: str) -> str:
    """``telegram:42`` as given, or a bare id on the caller's platform."""
    try:
        return UserRef.parse(raw).qualified if ":" in raw else UserRef(ctx.event.user.platform, raw).qualified
    except ValueError:
        raise CommandUsageError(f"bad user id {raw!r}", user_message="Give a user id like telegram:123.") from None


async def admin_ban(ctx: Context, args: tuple[str, ...]) -> str:
    user = _target_user(ctx, args[0])
    if user == ctx.event.user.qualified:
        raise CommandUsageError("self-ban", user_message="You can't ban yourself.")
    await ctx.app.store.set_banned(user, True)
    return f"Banned {user}. The bot will ignore them."


async def admin_unban(ctx: Context, args: tuple[str, ...]) -> str:
    user = _target_user(ctx, args[0])
    if not await ctx.app.store.is_banned(user):
        raise NotFound(f"{user} not banned", user_message=f"{user} is not banned.")
    await ctx.app.store.set_banned(user, False)
    return f"Unbanned {user}."


_USER = ArgSpec("user", "platform-qualified user id, e.g. telegram:123", required=True)

BUILTIN_COMMANDS = (
    CommandSpec("start", "Say hello and show what I can do", start),
    CommandSpec("help", "List the commands", help_command, private=True),
    CommandSpec("persona", "Show or switch the persona", persona_command, (ArgSpec("name", "persona to use"),)),
    CommandSpec("reset", "Start a new conversation", reset),
    CommandSpec("about", "About this bot", about),
    CommandSpec("stats", "Usage statistics", admin_stats, admin_only=True, private=True),
    CommandSpec(
        "persona-default",
        "Set the default persona for this chat, server or bot",
        admin_persona_default,
        (ArgSpec("name", "persona", required=True), ArgSpec("scope", "where", choices=("chat", "server", "bot"))),
        admin_only=True,
    ),
    CommandSpec("ban", "Ignore a user on every platform", admin_ban, (_USER,), admin_only=True, private=True),
    CommandSpec("unban", "Stop ignoring a user", admin_unban, (_USER,), admin_only=True, private=True),
)
