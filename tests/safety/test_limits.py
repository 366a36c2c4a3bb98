"""Abuse limits: token buckets with one notice per window, daily quota, global generation cap."""

import asyncio
import datetime as dt

from core.events import ChatKind
from core.generation.scripted import ScriptedGenerator
from core.safety.limits import AbuseLimiter
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.safety.conftest import safe_app

REPLY = "Hello there, friend!"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.day = dt.date(2030, 1, 1)

    def __call__(self) -> float:
        return self.now


def use_clock(app, clock: Clock) -> AbuseLimiter:
    """Swap the app's limiter for one on a test clock (same settings)."""
    limiter = AbuseLimiter(app.settings.limits, exempt=app.is_admin, clock=clock, today=lambda: clock.day)
    chain = [(name, limiter if name == "limits:rate_limit" else mw) for name, mw in app.dispatcher.named_middlewares()]
    assert "limits:rate_limit" in dict(chain)
    app.dispatcher.set_chain(chain)
    return limiter


async def send(app, outbox, text="hi", **kwargs):
    before = len(outbox.texts)
    await app.dispatcher.feed(make_event(text, **kwargs), outbox)
    return outbox.texts[before:]


async def test_a_flooding_user_is_told_once_per_window():
    async with safe_app(limits={"user_messages_per_minute": 6, "user_burst": 2}) as app:
        clock, outbox = Clock(), RecordingOutbox()
        use_clock(app, clock)
        answers = [await send(app, outbox) for _ in range(10)]
        assert answers[:2] == [[REPLY], [REPLY]]
        assert answers[2] == ["You are sending messages too fast. Please wait 10 s."]
        assert answers[3:] == [[]] * 7  # silence for the rest of the window
        clock.now += 10.5  # one token back
        assert await send(app, outbox) == [REPLY]
        assert (await send(app, outbox))[0].startswith("You are sending messages too fast")  # a new window
        assert await send(app, outbox, user="telegram:2") == [REPLY]  # others are unaffected


async def test_group_chatter_not_for_the_bot_costs_nothing():
    async with safe_app(limits={"chat_messages_per_minute": 1, "chat_burst": 2}) as app:
        clock, outbox = Clock(), RecordingOutbox()
        use_clock(app, clock)
        for n in range(30):
            await send(app, outbox, "just chatting", user=f"telegram:{n}", chat="-9", kind=ChatKind.GROUP, addressed=False)
        assert outbox.texts == []
        assert await send(app, outbox, "@bot hi", chat="-9", kind=ChatKind.GROUP) == [REPLY]


async def test_a_busy_chat_gets_one_notice_not_one_per_user():
    async with safe_app(limits={"chat_messages_per_minute": 1, "chat_burst": 2}) as app:
        clock, outbox = Clock(), RecordingOutbox()
        use_clock(app, clock)
        for n in range(6):
            await send(app, outbox, "@bot hi", user=f"telegram:{n}", chat="-9", kind=ChatKind.GROUP)
        assert outbox.texts == [REPLY, REPLY, "This chat is sending me messages too fast. Please wait 60 s."]


async def test_daily_quota_counts_chat_not_commands_and_resets_each_day():
    async with safe_app(limits={"user_daily_quota": 2}) as app:
        clock, outbox = Clock(), RecordingOutbox()
        limiter = use_clock(app, clock)
        assert [await send(app, outbox) for _ in range(2)] == [[REPLY], [REPLY]]
        over = await send(app, outbox)
        assert over == ["You have reached today's limit of 2 messages. It resets at 00:00 UTC."]
        assert await send(app, outbox) == []  # told once
        assert (await send(app, outbox, "/help"))[0].startswith("Commands:")  # commands still work
        assert await send(app, outbox, user="telegram:2") == [REPLY]
        assert await limiter.quota_used("telegram:1") == 2
        clock.day += dt.timedelta(days=1)
        clock.now += 3600
        assert await send(app, outbox) == [REPLY]


async def test_admins_are_exempt_unless_the_bot_file_says_otherwise():
    limits = {"user_daily_quota": 1, "user_burst": 1, "user_messages_per_minute": 1}
    async with safe_app(limits=limits) as app:
        outbox = RecordingOutbox()
        assert [await send(app, outbox, user="telegram:999") for _ in range(3)] == [[REPLY]] * 3
    async with safe_app(limits=limits, safety={"exempt_admins": False}) as app:
        outbox = RecordingOutbox()
        answers = [await send(app, outbox, user="telegram:999") for _ in range(3)]
        assert answers[0] == [REPLY] and answers[1][0].startswith("You are sending") and answers[2] == []


async def wait_until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)


async def test_the_generation_cap_answers_busy_at_once_when_the_bot_may_not_wait():
    hold = asyncio.Event()
    generator = ScriptedGenerator([REPLY], hold=hold)
    async with safe_app(generator=generator, limits={"max_concurrent_generations": 1}, safety={"busy_wait_s": 0}) as app:
        first, second = RecordingOutbox(), RecordingOutbox()
        running = asyncio.create_task(app.dispatcher.feed(make_event("one", user="telegram:1"), first))
        await wait_until(lambda: app.generator.in_flight == 1)
        await app.dispatcher.feed(make_event("two", user="telegram:2"), second)
        assert second.texts == ["I'm busy with other conversations, try again in a moment."]
        hold.set()
        await running
        assert first.texts == [REPLY] and app.generator.in_flight == 0
        conversation = await app.store.active_conversation(make_event("x", user="telegram:2").key)
        turns = await app.store.history(conversation.id)
        assert [(m.role, m.text) for m in turns][0] == ("user", "two")  # the message is kept
        assert turns[0].answered


async def test_the_generation_cap_queues_within_the_wait():
    hold = asyncio.Event()
    generator = ScriptedGenerator(["first answer", "second answer"], hold=hold)
    async with safe_app(generator=generator, limits={"max_concurrent_generations": 1}, safety={"busy_wait_s": 30}) as app:
        outbox = RecordingOutbox()
        one = asyncio.create_task(app.dispatcher.feed(make_event("one", user="telegram:1"), outbox))
        await wait_until(lambda: app.generator.in_flight == 1)
        two = asyncio.create_task(app.dispatcher.feed(make_event("two", user="telegram:2"), outbox))
        await wait_until(lambda: app.generator.waiting == 1)
        assert len(generator.requests) == 1  # the second has not reached the model
        hold.set()
        await asyncio.gather(one, two)
        assert outbox.texts == ["first answer", "second answer"]
        health = await app.generator.health()
        assert (health["in_flight"], health["waiting"], health["concurrency_limit"]) == (0, 0, 1)


async def test_idle_buckets_are_forgotten_so_memory_stays_bounded(monkeypatch):
    monkeypatch.setattr("core.shared_limits.PRUNE_ABOVE", 4)
    async with safe_app() as app:
        clock, outbox = Clock(), RecordingOutbox()
        limiter = use_clock(app, clock)
        for n in range(20):
            clock.now += 3600  # everyone before is idle and full again
            assert await send(app, outbox, user=f"telegram:{n}") == [REPLY]
        assert len(limiter._limits._buckets) <= 6  # 4 kept at most before pruning, plus this user's and chat's
