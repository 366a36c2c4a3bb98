"""/metrics after real traffic through a bot's chain, scraped over HTTP and parsed with
prometheus-client's parser; the metrics feature attaches through the declared seams."""

from __future__ import annotations

import httpx

from core.bootstrap import build_app
from core.errors import GenerationBusy
from core.generation.scripted import ScriptedGenerator
from core.http.operator import Operator, setup_metrics
from core.http.settings import HttpSettings
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox
from tests.operator_http.scrape import value


async def test_metrics_count_traffic_answers_busy_replies_rate_limits_and_errors():
    settings = make_settings(limits={"user_burst": 2, "user_messages_per_minute": 1})
    generator = ScriptedGenerator(["Hello there, 朋友!", GenerationBusy("all slots busy")])
    operator = Operator.from_settings(HttpSettings(enabled=True, port=0))
    app = build_app(
        settings, store=SQLiteStore(":memory:"), generator=generator, metrics=operator.metrics, features=[setup_metrics]
    )
    async with operator, app as bot:
        operator.watch(bot)
        operator.health.started()
        assert bot.dispatcher.describe()[:2] == ["recovery:metrics", "recovery:dedupe"]  # outermost: sees everything
        outbox = RecordingOutbox()
        await bot.dispatcher.feed(make_event("hi 你好", user="telegram:1"), outbox)  # answered
        await bot.dispatcher.feed(make_event("again", user="telegram:1"), outbox)  # generation busy
        await bot.dispatcher.feed(make_event("third", user="telegram:1"), outbox)  # over the rate limit: told
        await bot.dispatcher.feed(make_event("fourth", user="telegram:1"), outbox)  # still over: dropped silently
        await bot.dispatcher.feed(make_event("   ", user="discord:7"), outbox)  # empty: InputRejected
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"http://127.0.0.1:{operator.server.port}/readyz")  # type: ignore[union-attr]
            page = (await client.get(f"http://127.0.0.1:{operator.server.port}/metrics")).text  # type: ignore[union-attr]
    assert ready.status_code == 200
    assert value(page, "personabot_messages_received_total", platform="telegram") == 4
    assert value(page, "personabot_messages_received_total", platform="discord") == 1
    assert value(page, "personabot_messages_answered_total", platform="telegram") == 2  # the busy notice is stored too
    assert value(page, "personabot_reply_latency_seconds_count", platform="telegram") == 2
    assert value(page, "personabot_time_to_first_token_seconds_count") == 1
    assert value(page, "personabot_generated_tokens_total") > 0
    assert value(page, "personabot_busy_replies_total") == 1
    assert value(page, "personabot_rate_limited_messages_total") == 2  # the told one and the silent one
    assert value(page, "personabot_errors_total", kind="InputRejected") == 1
    assert value(page, "personabot_errors_total", kind="GenerationBusy") == 1
    assert value(page, "personabot_generation_queue_depth") == 0
    assert value(page, "personabot_store_latency_seconds_count", operation="add_reply") == 2
    assert value(page, "personabot_store_latency_seconds_count", operation="get_setting") >= 1  # /readyz reads one


async def test_moderation_actions_and_scheduled_jobs_are_counted_where_they_happen():
    from core.plugins import setup_plugins
    from core.safety import setup_safety
    from tests.plugins.test_examples import Console, shipped_bot

    settings = shipped_bot("team").model_copy(
        update={"safety": {"moderation": {"words": ["badword"], "private": {"input": "refuse"}}}}
    )
    app = build_app(
        settings,
        store=SQLiteStore(":memory:"),
        generator=ScriptedGenerator(["Model reply."]),
        features=[setup_safety, setup_plugins, setup_metrics],
    )
    async with app as bot:
        console = Console(bot)
        await console.say("this has a badword in it")
        await console.say("remind me in 20 minutes to stretch")
        job = (await bot.services.plugins.loaded["reminders"].ctx.jobs(user="console:ada"))[0]  # type: ignore[union-attr]
        assert await bot.services.plugins.scheduler.run_due(job.run_at + 1) == 1  # type: ignore[union-attr]
        page = bot.metrics.render().decode()
    assert value(page, "personabot_moderation_actions_total", direction="input", action="refuse") == 1
    assert value(page, "personabot_jobs_due_total", plugin="reminders") == 1
    assert value(page, "personabot_jobs_claimed_total", plugin="reminders") == 1
    assert value(page, "personabot_jobs_delivered_total", plugin="reminders") == 1
