"""Fairness across bots sharing one model (bots/multi.py): the batching engine admits the bots in
turn, then each bot's users, so bot A with 20 queued requests cannot starve bot B's one.
Tiny llama, static engine, the batch thread held with Gate (no timings)."""

from __future__ import annotations

import asyncio

import pytest

from bots.multi import SharedGenerator
from core.events import ChatMessage, FinishReason, GenerationParams, GenerationRequest
from core.generation.scripted import ScriptedGenerator
from core.generation.transformers_backend import TransformersGenerator
from tests.generation.steps import Gate


def asking(bot: str, user: str, text: str, new_tokens: int = 12) -> GenerationRequest:
    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0, repetition_penalty=1.0)
    return GenerationRequest((ChatMessage("user", text),), params, conversation_id=f"{bot}:{user}", user_id=user, tenant=bot)


async def collect(gen, request):
    return [chunk async for chunk in gen.stream(request)]


@pytest.fixture
async def shared(llama_dir):
    gen = await TransformersGenerator.load(
        str(llama_dir), batching=True, max_batch_size=2, max_queue=64, max_active_per_user=2, max_waiting_per_user=64,
        engine="static",
    )
    yield gen
    await gen.aclose()


async def test_a_bot_with_20_queued_requests_does_not_starve_another_bots_one(shared):
    batcher = shared._shared.batcher
    admitted: list[str] = []
    original = batcher._start

    def spy(request):
        admitted.append(request.tenant)
        original(request)

    batcher._start = spy
    gate = Gate(shared.model)
    gate.enabled = True  # the batch thread stops before its first pass: nothing finishes meanwhile
    try:
        flood = [asyncio.create_task(collect(shared, asking("A", f"a{n}", f"question {n}"))) for n in range(20)]
        while batcher.active + batcher.waiting < 20:
            await asyncio.sleep(0)
        one = asyncio.create_task(collect(shared, asking("B", "b0", "hello")))
        while batcher.waiting < 19:
            await asyncio.sleep(0)
        assert admitted == ["A", "A"]  # the batch (2) is full, 18 of A and 1 of B wait
    finally:
        gate.open()
    results = await asyncio.gather(*flood, one)
    assert all(chunks[-1].finish_reason in (FinishReason.LENGTH, FinishReason.STOP) for chunks in results)
    assert admitted.index("B") <= 3  # at most one more of A's went first (by user alone B would be 21st)
    assert len(admitted) == 21


async def test_each_bot_s_handle_names_its_bot_on_every_request():
    inner = ScriptedGenerator(["ok"])

    async def release() -> None:
        return None

    for bot in ("alpha", "beta"):
        handle = SharedGenerator(inner, release, bot)
        request = GenerationRequest((ChatMessage("user", "hi"),), conversation_id="c", user_id="telegram:1")
        assert [chunk.text async for chunk in handle.stream(request)] == ["ok", ""]
    assert [request.tenant for request in inner.requests] == ["alpha", "beta"]
