"""OpenAIGenerator against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.errors import ConfigError, GenerationError
from core.events import ChatMessage, FinishReason, GenerationParams, GenerationRequest
from core.generation.openai_backend import OpenAIGenerator, parse_retry_after
from core.ports import Generator
from tests.generation.fake_openai import FakeOpenAI, Reply, delta, finish

KEY = "sk-test-secret-123"


def request(text="hello", **params):
    return GenerationRequest((ChatMessage("system", "be kind"), ChatMessage("user", text)), GenerationParams(**params),
                             conversation_id="c1", user_id="telegram:1")


async def collect(gen, req):
    return [chunk async for chunk in gen.stream(req)]


def text_of(chunks):
    return "".join(c.text for c in chunks)


@pytest.fixture
async def server():
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def gen(server, monkeypatch):
    monkeypatch.setenv("FAKE_LLM_KEY", KEY)
    generator = OpenAIGenerator(base_url=server.base_url, model="fake-model", api_key_env="FAKE_LLM_KEY", max_retries=2)
    generator.sleeps = []

    async def record(delay):
        generator.sleeps.append(delay)

    generator._sleep = record
    yield generator
    await generator.aclose()


async def test_streams_sse_deltas(server, gen):
    assert isinstance(gen, Generator)
    server.replies.append(Reply(events=[delta("Hel"), delta("lo "), delta("世界"), finish("stop")]))
    chunks = await collect(gen, request(max_new_tokens=33, temperature=0.5))
    assert [c.text for c in chunks[:-1]] == ["Hel", "lo ", "世界"]
    assert chunks[-1].finish_reason is FinishReason.STOP
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["json"]["stream"] is True and sent["json"]["max_tokens"] == 33 and sent["json"]["temperature"] == 0.5
    assert sent["json"]["messages"][1] == {"role": "user", "content": "hello"}
    assert KEY not in repr(gen)


async def test_429_then_success_honours_retry_after(server, gen, caplog):
    server.replies += [Reply(429, headers={"Retry-After": "2"}), Reply(events=[delta("fine"), finish()])]
    with caplog.at_level(logging.DEBUG):
        chunks = await collect(gen, request())
    assert text_of(chunks) == "fine"
    assert gen.sleeps == [2.0]
    assert len(server.requests) == 2
    assert KEY not in caplog.text


async def test_500_then_success_backs_off(server, gen):
    server.replies += [Reply(500), Reply(503), Reply(events=[delta("up"), finish()])]
    assert text_of(await collect(gen, request())) == "up"
    assert len(gen.sleeps) == 2 and 0 < gen.sleeps[0] <= gen.backoff_s and gen.sleeps[1] <= 2 * gen.backoff_s


async def test_gives_up_after_max_retries(server, gen):
    server.replies += [Reply(502)] * 3
    with pytest.raises(GenerationError, match="3 attempts"):
        await collect(gen, request())


async def test_client_errors_are_not_retried_and_never_show_the_key(server, gen):
    server.replies.append(Reply(401, body='{"error": "bad key"}'))
    with pytest.raises(GenerationError, match="FAKE_LLM_KEY") as info:
        await collect(gen, request())
    assert KEY not in str(info.value)
    assert len(server.requests) == 1 and gen.sleeps == []


async def test_connection_refused_is_retried_then_reported():
    async with FakeOpenAI() as fake:
        url = fake.base_url  # closed when the block ends: nothing listens there afterwards
    generator = OpenAIGenerator(base_url=url, model="m", max_retries=1)
    generator.sleeps = []

    async def record(delay):
        generator.sleeps.append(delay)

    generator._sleep = record
    try:
        with pytest.raises(GenerationError, match="cannot reach"):
            await collect(generator, request())
        assert len(generator.sleeps) == 1
    finally:
        await generator.aclose()


async def test_timeout_keeps_partial_text(server, gen):
    server.replies.append(Reply(events=[delta("partial")], done=False, hang=True))
    chunks = await collect(gen, request(timeout_s=0.3))
    assert text_of(chunks) == "partial"
    assert chunks[-1].finish_reason is FinishReason.TIMEOUT


async def test_bad_json_is_a_generation_error(server, gen):
    server.replies.append(Reply(events=[delta("a"), "{not json"]))
    with pytest.raises(GenerationError, match="invalid JSON"):
        await collect(gen, request())


async def test_stop_strings_and_length(server, gen):
    server.replies.append(Reply(events=[delta("abc ST"), delta("OP def"), finish()]))
    chunks = await collect(gen, request(stop=("STOP",)))
    assert text_of(chunks) == "abc " and chunks[-1].finish_reason is FinishReason.STOP_STRING
    assert server.requests[-1]["json"]["stop"] == ["STOP"]
    server.replies.append(Reply(events=[delta("long"), finish("length")]))
    assert (await collect(gen, request()))[-1].finish_reason is FinishReason.LENGTH


async def test_stream_cut_without_done_is_an_error_finish(server, gen):
    server.replies.append(Reply(events=[delta("half")], done=False))
    chunks = await collect(gen, request())
    assert text_of(chunks) == "half" and chunks[-1].finish_reason is FinishReason.ERROR


async def test_non_streaming_json_reply(server, gen):
    server.replies.append(Reply(body='{"choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}]}'))
    assert text_of(await collect(gen, request())) == "whole"


async def test_max_in_flight_bounds_concurrent_requests(server, monkeypatch):
    gen = OpenAIGenerator(base_url=server.base_url, model="m", max_in_flight=1)
    gate = asyncio.Event()
    server.replies += [Reply(events=[delta("a"), finish()], gate=gate), Reply(events=[delta("b"), finish()])]
    try:
        first = asyncio.create_task(collect(gen, request()))
        second = asyncio.create_task(collect(gen, request()))
        await server.arrived.wait()
        for _ in range(1000):  # let the second request run until it waits for a slot
            if gen._waiting == 1:
                break
            await asyncio.sleep(0)
        assert (await gen.health())["waiting"] == 1
        assert len([r for r in server.requests if r["path"].endswith("/chat/completions")]) == 1
        gate.set()
        assert text_of(await first) == "a" and text_of(await second) == "b"
    finally:
        await gen.aclose()


async def test_cancel_by_conversation(server, gen):
    server.replies.append(Reply(events=[delta("so far")], done=False, hang=True))
    stream = gen.stream(request())
    assert (await anext(stream)).text == "so far"
    assert gen.cancel("c1") == 1
    assert (await anext(stream)).finish_reason is FinishReason.CANCELLED


async def test_health_and_token_estimate(server, gen):
    assert (await gen.health())["ok"] is True
    assert gen.count_tokens([ChatMessage("user", "你好世界")]) >= 4


def test_exact_token_count_with_a_tokenizer(llama_dir):
    gen = OpenAIGenerator(base_url="http://127.0.0.1:9/v1", model="m", tokenizer=str(llama_dir))
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(llama_dir).apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True)
    assert gen.count_tokens([ChatMessage("user", "hello")]) == len(expected["input_ids"])


def test_config_errors(monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ConfigError, match="NOPE_KEY"):
        OpenAIGenerator(base_url="http://x/v1", model="m", api_key_env="NOPE_KEY")
    with pytest.raises(ConfigError):
        OpenAIGenerator(base_url="localhost:8000", model="m")


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
