"""Daily check-in (companion): an opt-in message every day at the time the user chose.

    /daily on 08:30 Europe/Paris     start (time zone optional: the bot's default)
    /daily off                       stop
    /daily                           show the setting

Only in private chats: a check-in is personal. The job reschedules itself at the
next local time, so it follows daylight-saving changes. With ``use_model = true`` the
bot's model writes each check-in (falling back to the configured messages on error).
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.errors import CommandUsageError, GenerationError
from core.events import ChatKind, ChatMessage, GenerationParams, GenerationRequest
from core.plugins import N_, ArgSpec, Job, Plugin, PluginContext, Turn, _, translate
from plugins.timeparse import TimeParseError, known_zone, next_time_of_day, parse_clock, zone

MAX_LATE_S = 3 * 3600
DEFAULT_MESSAGES = (
    N_("Good to see you again{name}! How are you feeling today?"),
    N_("Hi{name}! What's one thing you're looking forward to today?"),
    N_("Hey{name}, checking in: how did you sleep?"),
)


class DailyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: Annotated[str, AfterValidator(known_zone)] = "UTC"  # used when the user gives none
    messages: tuple[str, ...] = Field(DEFAULT_MESSAGES, min_length=1)  # "{name}" becomes ", <their name>"
    use_model: bool = False
    model_prompt: str = "Write one short, warm check-in message to a friend you talk to every day. One or two sentences."


plugin = Plugin(
    "daily",
    description="Opt-in daily check-in message at the user's chosen time (/daily on 08:30)",
    config=DailyConfig,
    stores_user_data=True,  # chosen time, time zone, chat
)


def _config(ctx: PluginContext) -> DailyConfig:
    assert isinstance(ctx.config, DailyConfig)
    return ctx.config


def next_run(clock: str, zone_name: str, after: float) -> float:
    """Unix time of the next ``clock`` (HH:MM) in ``zone_name`` after ``after``."""
    tz = zone(zone_name)
    at: time = parse_clock(clock)
    return next_time_of_day(datetime.fromtimestamp(after, tz), at).timestamp()


@plugin.command(
    "daily",
    N_("Daily check-in: /daily on 08:30 [time zone], /daily off"),
    args=(
        ArgSpec("action", N_("on, off or status"), choices=("on", "off", "status")),
        ArgSpec("time", N_("HH:MM, e.g. 08:30")),
        ArgSpec("timezone", N_("e.g. Europe/Paris or Asia/Shanghai")),
    ),
    private=True,
)
async def daily(turn: Turn) -> str:
    action = turn.args[0].lower() if turn.args else "status"
    storage = turn.plugin.storage.user(turn.user)
    current = await storage.get("checkin")
    if action == "status":
        if not current:
            return turn.t("Daily check-ins are off. Send /daily on 08:30 to get one every morning.")
        return turn.t("I check in every day at {time} ({zone}). /daily off stops it.", time=current["time"], zone=current["timezone"])
    if action == "off":
        if not current:
            return turn.t("Daily check-ins were already off.")
        await turn.plugin.cancel(current["job"])
        await storage.delete("checkin")
        return turn.t("OK, no more daily check-ins.")
    if turn.event.chat_kind is ChatKind.GROUP:
        raise CommandUsageError("group", user_message=_("Let's set that up privately: send me /daily on 08:30 in a direct chat."))
    if len(turn.args) < 2:
        raise CommandUsageError("no time", user_message=_("At what time? For example: /daily on 08:30 Europe/Paris"))
    zone_name = turn.args[2] if len(turn.args) > 2 else _config(turn.plugin).timezone
    try:
        clock = parse_clock(turn.args[1]).strftime("%H:%M")
        first = next_run(clock, zone_name, turn.event.received_at)
    except TimeParseError as exc:
        raise CommandUsageError(str(exc), user_message=exc.message) from None
    if current:
        await turn.plugin.cancel(current["job"])
    job = await turn.plugin.schedule(
        "checkin",
        at=first,
        key=turn.key,
        user=turn.user,
        payload={"time": clock, "timezone": zone_name, "name": turn.event.user_display_name, "locale": turn.locale},
    )
    await storage.set("checkin", {"time": clock, "timezone": zone_name, "job": job.id, "chat": turn.key.qualified})
    return turn.t("Done: I'll check in every day at {time} ({zone}). /daily off stops it.", time=clock, zone=zone_name)


async def compose(ctx: PluginContext, job: Job) -> str:
    config = _config(ctx)
    name = job.payload.get("name") or ""
    if config.use_model:
        request = GenerationRequest(
            (ChatMessage("user", config.model_prompt),),
            GenerationParams(max_new_tokens=60, temperature=0.9),
            conversation_id=f"plugin:daily:{job.id}",
            user_id=job.user_id or "",
        )
        try:
            text = "".join([chunk.text async for chunk in ctx.generator.stream(request)]).strip()
        except GenerationError as exc:
            ctx.log.warning("daily: model check-in failed, using a configured message: %s", exc)
        else:
            if text:
                return text
    template = config.messages[int(job.run_at // 86400) % len(config.messages)]
    return translate(job.payload.get("locale", ""), template).replace("{name}", f", {name}" if name else "")


@plugin.job("checkin")
async def checkin(ctx: PluginContext, job: Job) -> float:
    """Post the check-in (unless the bot was down past its time: a morning hello at night is odd)."""
    now = ctx.now()
    if job.key is not None and now - job.run_at <= MAX_LATE_S:
        await ctx.send(job.key, await compose(ctx, job))
    return next_run(job.payload["time"], job.payload["timezone"], max(job.run_at, now) + 60)


@plugin.export_user
async def export(ctx: PluginContext, user_id: str) -> dict[str, object] | None:
    return await ctx.storage.user(user_id).get("checkin")


@plugin.forget_user
async def forget(ctx: PluginContext, user_id: str) -> int:
    return await ctx.storage.user(user_id).forget()
