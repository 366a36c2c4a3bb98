"""Reminders (team assistant): "remind me in 20 minutes to …", delivered where it was asked.

    remind me in 20 minutes to stretch       /remind list
    提醒我明天上午9点开会                       /remind cancel 12
    /remind at 17:30 to send the report

Each reminder is a scheduled job in the database, so it survives restarts, and is
posted to the same platform, chat and thread it was asked in. Times without a date
are read in the bot's time zone (``timezone`` in ``[plugins.reminders]``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.errors import CommandUsageError, NotFound
from core.events import ChatKind
from core.plugins import N_, ArgSpec, Job, Plugin, PluginContext, Turn, _, _n, regex, translate
from plugins.timeparse import TimeParseError, known_zone, parse_reminder, zone


class RemindersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: Annotated[str, AfterValidator(known_zone)] = "UTC"
    max_per_user: int = Field(25, ge=1, le=1000)
    max_days_ahead: int = Field(366, ge=1, le=3660)
    max_text_chars: int = Field(500, ge=10, le=4000)


plugin = Plugin(
    "reminders",
    description="Reminders: 'remind me in 20 minutes to …'; /remind list|cancel",
    config=RemindersConfig,
    stores_user_data=True,  # the reminders' text, chat and time
)


def _config(ctx: PluginContext) -> RemindersConfig:
    assert isinstance(ctx.config, RemindersConfig)
    return ctx.config


def _local(ctx: PluginContext, when: float) -> str:
    return datetime.fromtimestamp(when, zone(_config(ctx).timezone)).strftime("%Y-%m-%d %H:%M %Z")


def _in(turn: Turn, seconds: float) -> str:
    minutes = max(round(seconds / 60), 1)
    if minutes < 120:
        return turn.t("in {n} min", n=minutes)
    hours = round(minutes / 60)
    return turn.t("in {n} h", n=hours) if hours < 48 else turn.nt("in {n} day", "in {n} days", round(hours / 24))


async def create(turn: Turn, request_text: str) -> str:
    ctx = turn.plugin
    config = _config(ctx)
    now = datetime.fromtimestamp(turn.event.received_at, zone(config.timezone))
    try:
        request = parse_reminder(request_text, now)
    except TimeParseError as exc:
        raise CommandUsageError(f"unparseable reminder {request_text!r}", user_message=exc.message) from None
    if (request.when - now).total_seconds() > config.max_days_ahead * 86400:
        raise CommandUsageError("too far ahead", user_message=_n("I can remember up to {n} day ahead.", "I can remember up to {n} days ahead.", config.max_days_ahead))
    if len(await ctx.jobs(user=turn.user, name="remind")) >= config.max_per_user:
        raise CommandUsageError(
            "too many reminders",
            user_message=_n(
                "You have {n} reminder already; /remind cancel one first.",
                "You have {n} reminders already; /remind cancel one first.",
                config.max_per_user,
            ),
        )
    text = request.text[: config.max_text_chars]
    job = await ctx.schedule(
        "remind",
        at=request.when,
        key=turn.key,
        user=turn.user,
        payload={
            "text": text,
            "name": turn.event.user_display_name,
            "group": turn.event.chat_kind is ChatKind.GROUP,
            "locale": turn.locale,
        },
    )
    return turn.t(
        "OK, I'll remind you {when} ({at}): {text} — #{id}",
        when=_in(turn, job.run_at - now.timestamp()), at=_local(ctx, job.run_at), text=text, id=job.id,
    )


@plugin.on_message(regex(r"^\s*(?:@\S+[\s,]+)?(?:please\s+|can you\s+|could you\s+)?remind me\b|提醒我"))
async def remind_from_chat(turn: Turn) -> str:
    return await create(turn, turn.text)


@plugin.command(
    "remind",
    N_("Set, list or cancel reminders"),
    args=(ArgSpec("request", N_("list | cancel ID | in 20 minutes to …"), required=True, rest=True),),
)
async def remind_command(turn: Turn) -> str:
    words = turn.args[0].split() if turn.args else []
    action = words[0].lower() if words else ""
    if action == "list" and len(words) == 1:
        return await list_reminders(turn)
    if action == "cancel":
        if len(words) != 2 or not words[1].lstrip("#").isdigit():
            raise CommandUsageError("bad cancel", user_message=_("Usage: /remind cancel ID (see /remind list)"))
        return await cancel(turn, int(words[1].lstrip("#")))
    return await create(turn, turn.args[0])


async def list_reminders(turn: Turn) -> str:
    ctx = turn.plugin
    jobs = await ctx.jobs(user=turn.user, name="remind")
    if not jobs:
        return turn.t("You have no reminders. Say “remind me in 20 minutes to stretch”.")
    lines = [turn.t("Your reminders:")]
    lines += [f"#{job.id} {_local(ctx, job.run_at)} — {job.payload.get('text', '')}" for job in jobs]
    return "\n".join(lines)


async def cancel(turn: Turn, job_id: int) -> str:
    ctx = turn.plugin
    try:
        job = await ctx.job(job_id)
    except NotFound:
        job = None
    if job is None or job.user_id != turn.user.qualified or job.name != "remind":
        raise NotFound(f"no reminder {job_id} of {turn.user}", user_message=_("You have no reminder #{id}.", id=job_id))
    await ctx.cancel(job_id)
    return turn.t("Cancelled reminder #{id}: {text}", id=job_id, text=job.payload.get("text", ""))


@plugin.job("remind")
async def deliver(ctx: PluginContext, job: Job) -> None:
    if job.key is None:
        return
    text = job.payload.get("text", "")
    name = job.payload.get("name") or ""
    locale = job.payload.get("locale", "")  # the user's language when they asked (older jobs: none)
    if job.payload.get("group") and name:
        heading = translate(locale, "⏰ Reminder for {name}", name=name)
    else:
        heading = translate(locale, "⏰ Reminder")
    await ctx.send(job.key, f"{heading}: {text}")


@plugin.export_user
async def export(ctx: PluginContext, user_id: str) -> list[dict[str, object]]:
    return [
        {"id": job.id, "at": job.run_at, "chat": job.key.qualified if job.key else None, "text": job.payload.get("text")}
        for job in await ctx.jobs(user=user_id, name="remind")
    ]


@plugin.forget_user
async def forget(ctx: PluginContext, user_id: str) -> int:
    return await ctx.storage.user(user_id).forget()


@plugin.tool("reminder_create", "Set a reminder for the user, e.g. request='tomorrow at 9 to call mum' (their words).")
async def reminder_create_tool(turn: Turn, request: str) -> str:
    return await create(turn, request)


@plugin.tool("reminder_list", "List the user's reminders (ids, times, texts).")
async def reminder_list_tool(turn: Turn) -> str:
    return await list_reminders(turn)


@plugin.tool("reminder_cancel", "Cancel one of the user's reminders by its id.")
async def reminder_cancel_tool(turn: Turn, reminder_id: int) -> str:
    return await cancel(turn, reminder_id)
