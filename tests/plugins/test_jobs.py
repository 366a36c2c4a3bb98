"""Scheduled jobs: stored, run on time, repeated, retried, dropped, and kept across restarts."""

from __future__ import annotations

import logging

import pytest

from core.errors import InputRejected, NotFound
from core.events import ConversationKey, Reply, SentMessage
from core.plugins.scheduler import MAX_ATTEMPTS, next_occurrence, retry_delay
from core.records import ScheduledJob
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import bot_settings, plugin_app, write_plugin

T0 = 1_900_000_000.0  # far in the future: the background loop never finds these jobs due

JOBS = '''
from core.plugins import Plugin

plugin = Plugin("ticker", stores_user_data=True)
runs = []

@plugin.job("say")
async def say(ctx, job):
    runs.append((job.id, ctx.now()))
    if job.payload.get("fail"):
        raise RuntimeError("job bug")
    await ctx.send(job.key, job.payload["text"])

@plugin.job("moving")
async def moving(ctx, job):
    runs.append((job.id, ctx.now()))
    return ctx.now() + 100.0

@plugin.export_user
async def export(ctx, user_id):
    return [job.payload for job in await ctx.jobs(user=user_id)]

@plugin.forget_user
async def forget(ctx, user_id):
    return 0
'''

TG = ConversationKey("telegram", "42")


@pytest.fixture
def settings(tmp_path):
    write_plugin(tmp_path, "ticker", JOBS)
    return bot_settings(tmp_path, {"enabled": ["ticker"], "paths": {"ticker": "ticker.py"}})


def runs_of(app) -> list:
    return app.services.plugins.loaded["ticker"].plugin.jobs["say"].__globals__["runs"]


async def connect(app, platform: str = "telegram") -> RecordingOutbox:
    outbox = RecordingOutbox()
    app.seams.outboxes.register(platform, outbox)
    return outbox


async def test_a_one_off_job_runs_once_at_its_time_then_is_gone(settings):
    async with plugin_app(settings) as app:
        outbox = await connect(app)
        ctx = app.services.plugins.loaded["ticker"].ctx
        job = await ctx.schedule("say", at=T0 + 60, key=TG, payload={"text": "时间到了 ⏰"})
        assert await app.services.plugins.scheduler.run_due(T0 + 59) == 0
        assert await app.services.plugins.scheduler.run_due(T0 + 61) == 1
        assert outbox.log == [("send", "1", "时间到了 ⏰")]
        assert await app.store.get_job(job.id) is None
        assert await app.services.plugins.scheduler.run_due(T0 + 1000) == 0


async def test_a_repeating_job_keeps_its_grid_and_skips_missed_runs(settings):
    async with plugin_app(settings) as app:
        outbox = await connect(app)
        ctx = app.services.plugins.loaded["ticker"].ctx
        job = await ctx.schedule("say", at=T0, every=3600, key=TG, payload={"text": "hourly"})
        await app.services.plugins.scheduler.run_due(T0 + 10)
        assert (await app.store.get_job(job.id)).run_at == T0 + 3600
        await app.services.plugins.scheduler.run_due(T0 + 5 * 3600 + 5)  # the bot was down for hours: one run, not four
        assert (await app.store.get_job(job.id)).run_at == T0 + 6 * 3600
        assert outbox.texts == ["hourly", "hourly"]


async def test_a_job_may_choose_its_next_time(settings):
    async with plugin_app(settings) as app:
        ctx = app.services.plugins.loaded["ticker"].ctx
        job = await ctx.schedule("moving", at=T0)
        await app.services.plugins.scheduler.run_due(T0 + 5)
        assert (await app.store.get_job(job.id)).run_at == T0 + 105


async def test_jobs_survive_a_restart(settings, tmp_path):
    from core.storage.sqlite import SQLiteStore

    database = tmp_path / "bot.db"
    async with plugin_app(settings, store=SQLiteStore(database)) as app:
        await app.services.plugins.loaded["ticker"].ctx.schedule("say", at=T0 + 60, key=TG, user="telegram:42",
                                                        payload={"text": "after the restart"})
    async with plugin_app(settings, store=SQLiteStore(database)) as app:
        outbox = await connect(app)
        assert await app.services.plugins.scheduler.run_due(T0 + 61) == 1
        assert outbox.texts == ["after the restart"]


async def test_a_job_waits_for_its_platform_to_connect(settings):
    async with plugin_app(settings) as app:
        await app.services.plugins.loaded["ticker"].ctx.schedule("say", at=T0, key=TG, payload={"text": "hi"})
        assert await app.services.plugins.scheduler.run_due(T0 + 1) == 0  # no Telegram yet: not run, not dropped
        assert await app.store.next_job_at(["ticker"], ["telegram"]) == T0
        outbox = await connect(app)
        assert await app.services.plugins.scheduler.run_due(T0 + 2) == 1
        assert outbox.texts == ["hi"]


async def test_an_outbox_is_learned_from_the_platforms_events_until_one_is_registered(settings):
    async with plugin_app(settings) as app:
        await app.services.plugins.loaded["ticker"].ctx.schedule("say", at=T0, key=TG, payload={"text": "hi"})
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("hello", user="telegram:42"), outbox)
        await app.services.plugins.scheduler.run_due(T0 + 1)
        assert outbox.texts == ["Model reply.", "hi"]


class GoneChatOutbox(RecordingOutbox):
    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        raise NotFound(f"chat {key} not found")


async def test_a_job_whose_chat_no_longer_exists_is_dropped_and_logged(settings, caplog):
    async with plugin_app(settings) as app:
        app.seams.outboxes.register("telegram", GoneChatOutbox())
        job = await app.services.plugins.loaded["ticker"].ctx.schedule("say", at=T0, every=60, key=TG, payload={"text": "x"})
        with caplog.at_level(logging.WARNING):
            await app.services.plugins.scheduler.run_due(T0 + 1)
        assert await app.store.get_job(job.id) is None
    assert f"plugin ticker: job {job.id} (say) dropped: cannot post to telegram:42" in caplog.text


async def test_a_raising_job_is_retried_with_backoff_then_dropped_and_the_bot_answers(settings, caplog):
    async with plugin_app(settings) as app:
        await connect(app)
        job = await app.services.plugins.loaded["ticker"].ctx.schedule("say", at=T0, key=TG, payload={"fail": True})
        now = T0
        with caplog.at_level(logging.ERROR):
            for attempt in range(1, MAX_ATTEMPTS):
                now += 1
                await app.services.plugins.scheduler.run_due(now)
                stored = await app.store.get_job(job.id)
                assert (stored.attempts, stored.run_at) == (attempt, now + retry_delay(attempt))
                now = stored.run_at
                outbox = RecordingOutbox()
                await app.dispatcher.feed(make_event("still there?"), outbox)
                assert outbox.texts == ["Model reply."]
            await app.services.plugins.scheduler.run_due(now + 1)
        assert await app.store.get_job(job.id) is None
        assert len(runs_of(app)) == MAX_ATTEMPTS
    assert f"plugin ticker: job {job.id} (say) failed (attempt 1)" in caplog.text
    assert f"dropped after {MAX_ATTEMPTS} attempts" in caplog.text


async def test_jobs_of_unknown_handlers_are_dropped(settings, caplog):
    async with plugin_app(settings) as app:
        stale = await app.store.add_job("ticker", "renamed_long_ago", T0)
        with caplog.at_level(logging.WARNING):
            await app.services.plugins.scheduler.run_due(T0 + 1)
        assert await app.store.get_job(stale.id) is None
    assert "has no handler 'renamed_long_ago'" in caplog.text


async def test_scheduling_mistakes_are_clear_errors(settings):
    from core.errors import ConfigError

    async with plugin_app(settings) as app:
        ctx = app.services.plugins.loaded["ticker"].ctx
        with pytest.raises(ConfigError, match="no job handler 'nope'"):
            await ctx.schedule("nope", delay=1)
        with pytest.raises(InputRejected, match="not both"):
            await ctx.schedule("say", at=T0, delay=1)
        with pytest.raises(InputRejected, match="give at="):
            await ctx.schedule("say")
        with pytest.raises(InputRejected, match="positive"):
            await ctx.schedule("say", at=T0, every=0)
        with pytest.raises(InputRejected, match="timezone-aware"):
            from datetime import datetime

            await ctx.schedule("say", at=datetime(2030, 1, 1))
        with pytest.raises(InputRejected, match="JSON"):
            await ctx.schedule("say", at=T0, payload={"x": object()})


def test_next_occurrence_stays_on_the_grid():
    job = ScheduledJob(1, "p", "j", run_at=100.0, every=10.0, key=None, user_id=None)
    assert next_occurrence(job, 100.0) == 110.0
    assert next_occurrence(job, 135.0) == 140.0
    assert next_occurrence(job, 50.0) == 100.0
