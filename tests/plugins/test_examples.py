"""The shipped example plugins, end to end through the console adapter, with the shipped bot files."""

from __future__ import annotations

import dataclasses
import io
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.console.adapter import ConsoleOutbox, console_event
from core.events import ChatKind, ConversationKey
from core.settings import LimitsSettings, ModelSettings, load_bot_settings
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import HashingEmbedder, plugin_app

BOTS = Path(__file__).resolve().parents[2] / "bots"


def shipped_bot(name: str, folder: Path | None = None, **plugin_config):
    """A bot file from bots/, on a scripted model; ``folder`` relocates it (relative paths follow)."""
    settings = load_bot_settings(BOTS / f"{name}.toml")
    plugins = dict(settings.plugins)
    for plugin, values in plugin_config.items():
        plugins[plugin] = {**plugins.get(plugin, {}), **values}
    update = {
        "model": ModelSettings(backend="scripted", replies=("Model reply.",)),
        "limits": LimitsSettings(user_burst=1000, chat_burst=1000),  # tests talk fast
        "plugins": plugins,
    }
    if folder is not None:
        update["source"] = folder / f"{name}.toml"
    return settings.model_copy(update=update)


class Console:
    """The console adapter's own conversion and Outbox, writing to a buffer."""

    def __init__(self, app, user: str = "ada", *, connect: bool = False) -> None:
        self.app, self.user = app, user
        self.buffer = io.StringIO()
        self.outbox = ConsoleOutbox(self.buffer, stream=False)
        if connect:  # as an adapter does at start, so jobs can post before anyone chats
            app.seams.outboxes.register("console", self.outbox)

    async def say(self, text: str) -> str:
        start = self.buffer.tell()
        await self.app.dispatcher.feed(console_event(text, self.user), self.outbox)
        self.outbox.end_line()
        return self.buffer.getvalue()[start:].strip()

    def since(self, mark: int) -> str:
        self.outbox.end_line()
        return self.buffer.getvalue()[mark:].strip()


# --- knowledge (support) -------------------------------------------------------------------


async def test_support_bot_answers_with_the_sources_of_its_help_articles():
    async with plugin_app(shipped_bot("support"), embedder=HashingEmbedder()) as app:
        console = Console(app)
        answer = await console.say("How many business days does standard delivery take?")
        assert answer == "Model reply.\n\nSources: shipping.md › Shipping times"
        prompt = "\n".join(message.content for message in app.generator.requests[-1].messages[1:])
        assert "Standard delivery takes 3 to 5 business days" in prompt
        assert "退款" not in prompt  # only what matched
        answer = await console.say("我想申请退款，订单号怎么写？")
        assert answer.endswith("Sources: 常见问题.md › 退款")


async def test_support_bot_without_a_match_answers_without_sources():
    async with plugin_app(shipped_bot("support"), embedder=HashingEmbedder()) as app:
        assert await Console(app).say("tell me a joke about penguins") == "Model reply."


async def test_kb_search_and_admin_reload(tmp_path):
    shutil.copytree(BOTS / "support_kb", tmp_path / "support_kb")
    async with plugin_app(shipped_bot("support", tmp_path), embedder=HashingEmbedder()) as app:
        console = Console(app)
        found = await console.say("/kb search reset password link")
        assert found.splitlines()[1].startswith("• account.md › Reset your password (")
        assert "Nothing in the help articles" in await console.say("/kb search warranty")
        (tmp_path / "support_kb" / "warranty.md").write_text("# Warranty\n\nEvery product has a 2 year warranty.\n")
        (tmp_path / "support_kb" / "legacy.txt").write_bytes("caf\xe9".encode("latin-1"))
        reloaded = await console.say("/admin kb reload")
        assert reloaded == (
            "Reloaded the knowledge base: 5 documents, 9 passages. Skipped: legacy.txt (not UTF-8)."
        )
        assert "warranty.md › Warranty" in await console.say("/kb search warranty")
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("/admin kb reload", user="telegram:5"), outbox)
        assert outbox.texts == ["Only the bot's admins can do that."]


async def test_a_missing_knowledge_folder_disables_only_the_plugin(tmp_path):
    async with plugin_app(shipped_bot("support", tmp_path), embedder=HashingEmbedder()) as app:
        status = app.services.plugins.statuses["knowledge"]
        assert (status.state, status.reason.split(":")[0]) == ("disabled", "setup failed")
        assert "does not exist" in status.reason
        assert await Console(app).say("hello") == "Model reply."


# --- reminders (team assistant) ------------------------------------------------------------


async def test_reminders_are_set_listed_delivered_and_cancelled():
    async with plugin_app(shipped_bot("team")) as app:
        console = Console(app)
        answer = await console.say("remind me in 20 minutes to stretch")
        assert answer.startswith("OK, I'll remind you in 20 min (")
        assert answer.endswith("): stretch — #1")
        await console.say("提醒我明天上午9点开会")
        listed = await console.say("/remind list")
        assert listed.splitlines()[0] == "Your reminders:"
        assert listed.splitlines()[1].endswith("— stretch") and listed.splitlines()[2].endswith("— 开会")
        job = (await app.services.plugins.loaded["reminders"].ctx.jobs(user="console:ada"))[0]
        mark = console.buffer.tell()
        assert await app.services.plugins.scheduler.run_due(job.run_at + 1) == 1
        assert console.since(mark) == "⏰ Reminder: stretch"
        assert await console.say("/remind cancel 2") == "Cancelled reminder #2: 开会"
        assert await console.say("/remind list") == "You have no reminders. Say “remind me in 20 minutes to stretch”."


async def test_a_reminder_goes_to_the_chat_and_thread_it_was_asked_in():
    async with plugin_app(shipped_bot("team")) as app:
        outbox = RecordingOutbox()
        event = make_event("@bot remind me in 5 minutes to deploy", user="telegram:7", chat="-100", kind=ChatKind.GROUP)
        event = dataclasses.replace(event, key=ConversationKey("telegram", "-100", "12"))  # a forum topic
        await app.dispatcher.feed(event, outbox)
        delivery = RecordingOutbox()
        app.seams.outboxes.register("telegram", delivery)
        job = (await app.services.plugins.loaded["reminders"].ctx.jobs(user="telegram:7"))[0]
        await app.services.plugins.scheduler.run_due(job.run_at)
        assert job.key.qualified == "telegram:-100/12"
        assert delivery.texts == ["⏰ Reminder for Tester: deploy"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("remind me on 2020-01-01 to renew", "That time (2020-01-01 09:00) has already passed."),
        ("remind me about the thing", "I couldn't tell when to remind you."),
        ("remind me in 5 minutes", "What should I remind you about?"),
        ("/remind at 25:00 to x", "25:00 is not a time of day."),
        ("remind me in 900 days to x", "I can remember up to 366 days ahead."),
        ("/remind cancel 99", "You have no reminder #99."),
        ("/remind cancel soon", "Usage: /remind cancel ID (see /remind list)"),
    ],
)
async def test_bad_reminder_requests_get_a_clear_answer(text, answer):
    async with plugin_app(shipped_bot("team")) as app:
        assert (await Console(app).say(text)).startswith(answer)
        assert await app.services.plugins.loaded["reminders"].ctx.jobs() == []


async def test_nobody_cancels_or_lists_someone_elses_reminder():
    async with plugin_app(shipped_bot("team")) as app:
        await Console(app, "ada").say("remind me in 1 hour to water the plants")
        bob = Console(app, "bob")
        assert await bob.say("/remind cancel 1") == "You have no reminder #1."
        assert (await bob.say("/remind list")).startswith("You have no reminders.")


async def test_reminders_survive_a_restart(tmp_path):
    from core.storage.sqlite import SQLiteStore

    database = tmp_path / "team.db"
    async with plugin_app(shipped_bot("team"), store=SQLiteStore(database)) as app:
        await Console(app).say("remind me in 2 hours to send the report")
        due = (await app.services.plugins.loaded["reminders"].ctx.jobs())[0].run_at
    async with plugin_app(shipped_bot("team"), store=SQLiteStore(database)) as app:
        buffer = io.StringIO()
        app.seams.outboxes.register("console", ConsoleOutbox(buffer, stream=False))
        await app.services.plugins.scheduler.run_due(due)
        assert buffer.getvalue() == "⏰ Reminder: send the report"


# --- lessons (tutor) --------------------------------------------------------------------------


async def test_next_lesson_follows_the_users_interests_within_the_lowest_level():
    embedder = HashingEmbedder()
    async with plugin_app(shipped_bot("tutor"), embedder=embedder) as app:
        assert (await Console(app, "newcomer").say("/lesson next")).startswith("📘 What is a fraction? (level 1)\n")
        from core.records import Profile

        interest = (await embedder.embed(["I love python programming"]))[0]
        await app.store.save_profile(Profile("console:coder", interest=tuple(interest.tolist()), interest_count=3))
        answer = await Console(app, "coder").say("/lesson next")
        assert answer.startswith("📘 Python variables (level 1) — picked for your interests (match ")


async def test_a_quiz_checks_answers_given_as_plain_messages_and_tracks_progress():
    async with plugin_app(shipped_bot("tutor"), embedder=HashingEmbedder()) as app:
        console = Console(app)
        await console.say("/lesson next")
        assert (await console.say("/lesson quiz")).startswith("Question 1/2: A pizza is cut into 8")
        answer = await console.say(" 0.25 ")
        assert answer.startswith("✅ Correct! 2/8 = 1/4")
        assert "Question 2/2: Which is bigger: 1/3 or 1/4?" in answer
        answer = await console.say("1/4")
        assert answer.startswith("❌ Not quite: the answer is 1/3.")
        assert "Lesson “What is a fraction?” complete!" in answer
        assert await console.say("and now some chat") == "Model reply."  # no question waiting: chat goes on
        assert await console.say("/lesson progress") == "Lessons finished: 1/6. Quiz answers: 1/2 correct."
        assert "✓ What is a fraction? (level 1)" in await console.say("/lesson list")
        assert (await console.say("/lesson answer 3")).startswith("No question is waiting.")


async def test_answers_in_other_scripts_and_with_accents_are_recognised():
    from plugins.lessons import is_correct

    assert is_correct("谢谢！", ("谢谢", "xiexie"))
    assert is_correct("XIÈXIE", ("谢谢", "xièxie"))
    assert is_correct("３/４", ("0.75",))
    assert is_correct("6/8", ("3/4",))
    assert not is_correct("", ("0",))
    assert not is_correct("1/0", ("1",))


async def test_lessons_join_the_bot_catalog():
    async with plugin_app(shipped_bot("tutor"), embedder=HashingEmbedder()) as app:
        assert [item.id for item in app.services.plugins.catalog()][:3] == ["fractions-1", "fractions-2", "python-1"]


async def test_a_broken_lesson_file_is_named_and_the_tutor_still_chats(tmp_path):
    (tmp_path / "my_lessons.toml").write_text('[[lessons]]\nid = "a"\ntitle = "A"\nlevel = 0\ntext = "x"\n')
    settings = shipped_bot("tutor", tmp_path, lessons={"file": "my_lessons.toml"})
    async with plugin_app(settings, embedder=HashingEmbedder()) as app:
        reason = app.services.plugins.statuses["lessons"].reason
        assert "my_lessons.toml: lessons.0.level: Input should be greater than or equal to 1" in reason
        assert await Console(app).say("hi") == "Model reply."


# --- daily (companion) ------------------------------------------------------------------------


async def test_daily_checkin_is_opt_in_arrives_at_the_chosen_local_time_and_repeats():
    async with plugin_app(shipped_bot("companion")) as app:
        console = Console(app, connect=True)
        assert (await console.say("/daily")).startswith("Daily check-ins are off.")
        assert await console.say("/daily on 8:30 Asia/Shanghai") == (
            "Done: I'll check in every day at 08:30 (Asia/Shanghai). /daily off stops it."
        )
        job = (await app.services.plugins.loaded["daily"].ctx.jobs(user="console:ada"))[0]
        local = datetime.fromtimestamp(job.run_at, ZoneInfo("Asia/Shanghai"))
        assert (local.hour, local.minute) == (8, 30)
        mark = console.buffer.tell()
        await app.services.plugins.scheduler.run_due(job.run_at)
        checkin = console.since(mark)
        messages = [m.replace("{name}", ", ada") for m in app.settings.plugins["daily"]["messages"]]
        assert checkin in messages
        assert (await app.store.get_job(job.id)).run_at == job.run_at + 86400
        assert await console.say("/daily off") == "OK, no more daily check-ins."
        assert await app.store.get_job(job.id) is None


async def test_daily_checkin_is_set_up_in_private_only():
    async with plugin_app(shipped_bot("companion")) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("/daily on 09:00", chat="-3", kind=ChatKind.GROUP), outbox)
        assert outbox.texts == ["Let's set that up privately: send me /daily on 08:30 in a direct chat."]
        assert await app.services.plugins.loaded["daily"].ctx.jobs() == []


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/daily on 25:61", "25:61 is not a time of day."),
        ("/daily on 08:00 Nowhere/City", "Unknown time zone 'Nowhere/City'"),
        ("/daily on", "At what time?"),
        ("/daily sometimes", "action must be one of: on, off, status"),
    ],
)
async def test_bad_daily_settings_get_a_clear_answer(command, answer):
    async with plugin_app(shipped_bot("companion")) as app:
        assert (await Console(app).say(command)).startswith(answer)


def test_the_next_checkin_follows_daylight_saving_time():
    from plugins.daily import next_run

    paris = ZoneInfo("Europe/Paris")
    before = datetime(2025, 3, 29, 8, 30, tzinfo=paris).timestamp()  # the night before the clocks go forward
    after = next_run("08:30", "Europe/Paris", before + 60)
    assert datetime.fromtimestamp(after, paris) == datetime(2025, 3, 30, 8, 30, tzinfo=paris)
    assert after - before == 23 * 3600


async def test_a_late_checkin_after_downtime_is_skipped_not_sent_at_night():
    async with plugin_app(shipped_bot("companion")) as app:
        console = Console(app, connect=True)
        await console.say("/daily on 08:30 UTC")
        job = (await app.services.plugins.loaded["daily"].ctx.jobs())[0]
        mark = console.buffer.tell()
        await app.services.plugins.scheduler.run_due(job.run_at + 10 * 3600)
        assert console.since(mark) == ""
        assert (await app.store.get_job(job.id)).run_at == job.run_at + 86400
