"""Hostile Unicode through the whole Dispatcher (safety feature on): no exception escapes,
what is stored is the input after core.text.normalize_user_text, every outgoing message
is within the platform's limits and is valid text."""

import asyncio
import dataclasses
import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import PersonabotError
from core.events import ChatKind
from core.generation.scripted import ScriptedGenerator
from core.text import normalize_user_text, utf16_len
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.safety.conftest import safe_app
from tests.safety.strategies import hostile_text

MAX_INPUT = 50_000
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
OUTBOXES = {
    "telegram": dict(max_message_length=4096, measure=utf16_len),
    "discord": dict(max_message_length=2000, markdown_fences=True),
    "console": dict(max_message_length=100_000),
}
_ids = itertools.count()


def echo(request):
    """The model repeats the user's (possibly cut) message, so outgoing text is hostile too."""
    return request.messages[-1].content


@pytest.fixture(scope="module")
def bot():
    """One App for every example: hypothesis runs them synchronously on this loop."""
    runner = asyncio.Runner()
    generator = ScriptedGenerator(echo, context_window=1_000_000)
    manager = safe_app(
        generator=generator,
        limits={"max_input_chars": MAX_INPUT},
        model={"backend": "scripted", "generation": {"max_new_tokens": 8192}},
    )
    app = runner.run(manager.__aenter__())
    unexpected: list[BaseException] = []
    default_hook = app.dispatcher.on_error

    async def record_unexpected(ctx, error):
        if not isinstance(error, PersonabotError):
            unexpected.append(error)
        await default_hook(ctx, error)

    app.dispatcher.on_error = record_unexpected
    yield runner, app, unexpected
    runner.run(manager.__aexit__(None, None, None))
    runner.close()


async def check(app, text: str, name: str, platform: str, kind: ChatKind, interval: float | None) -> None:
    outbox = RecordingOutbox(interval=interval, **OUTBOXES[platform])
    n = next(_ids)
    event = make_event(text, user=f"{platform}:{n}", chat=f"-{n}" if kind is ChatKind.GROUP else None, kind=kind)
    event = dataclasses.replace(event, user_display_name=name)
    await app.dispatcher.feed(event, outbox)  # must not raise
    for _, _, shown in outbox.log:
        assert 0 < outbox.measure(shown) <= outbox.max_message_length
        assert shown.strip() and not LONE_SURROGATE.search(shown)
    conversation = await app.store.active_conversation(event.key)
    stored = await app.store.history(conversation.id, limit=2)
    expected = normalize_user_text(text, MAX_INPUT).text
    if event.command is None and expected:
        assert [m.role for m in stored] == ["user", "assistant"]
        assert stored[0].text == expected and stored[0].answered
    else:
        assert stored == []  # commands and empty messages store no turn


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    text=hostile_text,
    name=st.text(max_size=30),
    platform=st.sampled_from(sorted(OUTBOXES)),
    kind=st.sampled_from([ChatKind.PRIVATE, ChatKind.GROUP]),
    interval=st.sampled_from([None, 0.0]),
)
def test_hostile_text_through_the_dispatcher(bot, text, name, platform, kind, interval):
    runner, app, unexpected = bot
    if interval == 0.0:
        text = text[:3000]  # an edit per streamed word: keep long inputs to the unstreamed runs
    runner.run(check(app, text, name, platform, kind, interval))
    assert unexpected == []
