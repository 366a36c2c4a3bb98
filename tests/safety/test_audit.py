"""Audit: /admin audit shows the latest entries; data commands are recorded with outcomes."""

import pytest

from core.commands import ArgSpec, CommandSpec
from core.errors import StorageError
from tests.conftest import make_event
from tests.fakes import RecordingOutbox

ADMIN = "telegram:999"


async def feed(app, text, user=ADMIN, outbox=None):
    outbox = outbox or RecordingOutbox()
    await app.dispatcher.feed(make_event(text, user=user), outbox)
    return outbox.last


async def test_admins_see_the_latest_entries_newest_first(app):
    await feed(app, "/admin ban telegram:5")
    await feed(app, "/admin unban telegram:5")
    text = await feed(app, "/admin audit 2")
    lines = text.splitlines()
    assert lines[0] == "Audit log, newest first (2):"
    assert "telegram:999: admin unban telegram:5 → ok" in lines[1]
    assert "telegram:999: admin ban telegram:5 → ok" in lines[2]


async def test_non_admins_are_refused_and_the_refusal_is_recorded(app):
    assert await feed(app, "/admin audit", user="telegram:1") == "Only the bot's admins can do that."
    entry = (await app.store.recent_audit(1))[0]
    assert (entry.actor, entry.action, entry.outcome) == ("telegram:1", "admin audit", "denied")


@pytest.mark.parametrize("count", ["0", "101", "many", "-3"])
async def test_a_bad_count_gets_a_usage_answer(app, count):
    assert await feed(app, f"/admin audit {count}") == "Give a number from 1 to 100."


async def test_a_long_log_is_cut_to_one_message_and_says_so(app):
    for n in range(40):
        await feed(app, f"/admin ban telegram:{1000 + n}")
    outbox = RecordingOutbox(max_message_length=500)
    text = await feed(app, "/admin audit 40", outbox=outbox)
    assert len(text) <= 500
    assert text.endswith("of 40; ask for fewer to see them all)")


async def test_data_commands_are_audited_and_a_forget_leaves_one_anonymous_record(app):
    from core.personalization.privacy import forget_user_data

    async def export(ctx, args):
        return "your data"

    async def forget(ctx, args):
        await forget_user_data(app.store, ctx.event.user.qualified, actor="self")
        return "forgotten"

    app.commands.extend([CommandSpec("export", "Export", export), CommandSpec("forget", "Forget", forget)])
    user = "telegram:42"
    await feed(app, "hello", user=user)  # the user exists in the store
    await feed(app, "/export", user=user)
    entry = (await app.store.recent_audit(1))[0]
    assert (entry.actor, entry.action, entry.target, entry.outcome) == (user, "export", "self", "ok")
    await feed(app, "/forget", user=user)
    entries = await app.store.recent_audit(10)  # the store erased the user's own entries with them
    assert [(e.actor, e.action, e.target, e.outcome) for e in entries] == [("self", "forget", "", "ok")]
    remaining = str([(e.actor, e.target, e.detail) for e in entries])  # not `at`: a timestamp may hold the digits
    assert entries[0].detail["deleted"]["messages"] == 2 and "42" not in remaining


async def test_a_refused_admin_command_records_its_target(app):
    assert await feed(app, "/admin ban telegram:5", user="telegram:1") == "Only the bot's admins can do that."
    entry = (await app.store.recent_audit(1))[0]
    assert (entry.actor, entry.action, entry.target, entry.outcome) == ("telegram:1", "admin ban", "telegram:5", "denied")


async def test_one_chat_forget_writes_exactly_one_anonymous_record_that_survives(tmp_path):
    from bots.app_factory import bot_app
    from core.personalization import setup_personalization
    from core.safety import setup_safety
    from core.storage.sqlite import SQLiteStore
    from tests.conftest import make_settings
    from tests.personalization.helpers import HashingEmbedder, rows_naming
    from core.generation.scripted import ScriptedGenerator

    user, db = "telegram:4242", tmp_path / "bot.db"
    settings = make_settings(limits={"user_burst": 1000, "chat_burst": 1000})
    app = bot_app(settings, store=SQLiteStore(db), generator=ScriptedGenerator(["ok"]), embedder=HashingEmbedder(),
                  features=[setup_safety, setup_personalization])
    async with app as bot:
        await feed(bot, "My name is Ann and I live in Berlin", user=user)
        await feed(bot, "/export", user=user)
        await feed(bot, "/forget", user=user)
        before = len(await bot.store.recent_audit(100))
        assert (await feed(bot, "/forget confirm", user=user)).startswith("Done.")
        entries = await bot.store.recent_audit(100)
    forgets = [e for e in entries if e.action == "forget"]
    assert len(forgets) == 1 and len(entries) == before - 2 + 1  # the user's /export and /forget went with them
    (record,) = forgets
    assert (record.actor, record.target, record.outcome) == ("self", "", "ok")
    assert record.detail["deleted"]["memories"] == 2 and record.detail["identities"] == 1
    assert rows_naming(db, [user, "4242", "Ann", "Berlin"]) == {}  # nothing leads back, no pseudonym either


async def test_a_failing_data_command_is_recorded_as_an_error(app):
    async def broken(ctx, args):
        raise StorageError("disk on fire")

    app.commands.add(CommandSpec("export", "Export", broken, (ArgSpec("format", "json or csv"),)))
    assert await feed(app, "/export now", user="telegram:7") == StorageError.user_message
    entry = (await app.store.recent_audit(1))[0]
    assert (entry.actor, entry.action, entry.target, entry.outcome) == ("telegram:7", "export", "self", "error")
    assert entry.detail == {"args": ["now"]}
