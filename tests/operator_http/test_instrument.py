"""The metric feeders alone: the generator wrapper and the chain middleware."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from core.errors import GenerationBusy, RateLimited
from core.events import ChatMessage, ConversationKey, GenerationParams, GenerationRequest, IncomingMessage, UserRef
from core.generation.scripted import ScriptedGenerator
from core.http.instrument import AnsweredObserver, MeteredGenerator, MetricsMiddleware
from core.http.metrics import Metrics
from tests.operator_http.scrape import samples, value


def request() -> GenerationRequest:
    return GenerationRequest((ChatMessage("user", "hi"),), GenerationParams(), conversation_id="telegram:1")


def event(platform: str = "telegram") -> IncomingMessage:
    return IncomingMessage(
        event_id="e1", key=ConversationKey(platform, "1"), user=UserRef(platform, "1"), text="hi", received_at=100.0
    )


async def drain(generator: MeteredGenerator) -> str:
    return "".join([chunk.text async for chunk in generator.stream(request())])


async def test_a_stream_counts_queue_depth_until_its_first_token_then_ttft_and_tokens():
    metrics, hold = Metrics(), asyncio.Event()
    generator = MeteredGenerator(ScriptedGenerator(["Hello there, 朋友 friend"], hold=hold), metrics)
    task = asyncio.create_task(drain(generator))
    while not generator.inner.requests:  # type: ignore[attr-defined]  # until it waits on ``hold``
        await asyncio.sleep(0)
    page = metrics.render().decode()
    assert value(page, "personabot_generation_queue_depth") == 1
    assert value(page, "personabot_generation_in_flight") == 1
    hold.set()
    assert await task == "Hello there, 朋友 friend"
    page = metrics.render().decode()
    assert value(page, "personabot_generation_queue_depth") == 0
    assert value(page, "personabot_generation_in_flight") == 0
    assert value(page, "personabot_time_to_first_token_seconds_count") == 1
    assert value(page, "personabot_generated_tokens_total") > 0


async def test_a_busy_refusal_counts_as_busy_and_as_an_error_and_still_raises():
    metrics = Metrics()
    generator = MeteredGenerator(ScriptedGenerator([GenerationBusy("all slots busy")]), metrics)
    with pytest.raises(GenerationBusy):
        await drain(generator)
    page = metrics.render().decode()
    assert value(page, "personabot_busy_replies_total") == 1
    assert value(page, "personabot_errors_total", kind="GenerationBusy") == 1
    assert value(page, "personabot_generation_queue_depth") == 0
    assert value(page, "personabot_time_to_first_token_seconds_count") == 0


async def test_the_middleware_counts_arrivals_and_errors_by_kind_and_re_raises():
    metrics = Metrics()
    middleware = MetricsMiddleware(metrics)
    ctx = SimpleNamespace(event=event("discord"))

    async def fine(ctx):
        return None

    async def limited(ctx):
        raise RateLimited("user:discord:1 limited")

    async def broken(ctx):
        raise ValueError("bug")

    await middleware(ctx, fine)
    with pytest.raises(RateLimited):
        await middleware(ctx, limited)
    with pytest.raises(ValueError):
        await middleware(ctx, broken)
    page = metrics.render().decode()
    assert value(page, "personabot_messages_received_total", platform="discord") == 3
    assert value(page, "personabot_errors_total", kind="ValueError") == 1
    assert value(page, "personabot_errors_total", kind="RateLimited") == 1
    assert value(page, "personabot_rate_limited_messages_total") == 0  # the limiters count those (silent ones too)


async def test_the_observer_counts_an_answer_and_its_latency_from_receipt():
    metrics = Metrics()
    observer = AnsweredObserver(metrics, clock=lambda: 102.5)
    await observer(SimpleNamespace(event=event()), None, "reply")  # type: ignore[arg-type]
    page = metrics.render().decode()
    assert value(page, "personabot_messages_answered_total", platform="telegram") == 1
    assert value(page, "personabot_reply_latency_seconds_sum", platform="telegram") == 2.5
    assert value(page, "personabot_reply_latency_seconds_bucket", platform="telegram", le="2.0") == 0
    assert value(page, "personabot_reply_latency_seconds_bucket", platform="telegram", le="4.0") == 1


def test_every_metric_of_the_issue_is_exported_in_valid_text_format():
    names = {name for name, _ in samples(Metrics().render().decode())}
    for family in ("generation_queue_depth", "generation_in_flight"):
        assert f"personabot_{family}" in names
    # Labelled families show only once touched; their HELP/TYPE lines are there already.
    page = Metrics().render().decode()
    for family in (
        "messages_received_total",
        "messages_answered_total",
        "reply_latency_seconds",
        "time_to_first_token_seconds",
        "generated_tokens_total",
        "busy_replies_total",
        "moderation_actions_total",
        "rate_limited_messages_total",
        "errors_total",
        "jobs_due_total",
        "jobs_claimed_total",
        "jobs_delivered_total",
        "store_latency_seconds",
        "adapter_connected",
    ):
        assert f"# HELP personabot_{family}" in page, family
