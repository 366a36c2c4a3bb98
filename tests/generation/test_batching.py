"""Continuous batching, on both engines: same output as sequential greedy, fairness, busy,
cancel, prefix reuse.

Steps are observed through a forward hook on the input embedding (one call = one forward
pass of the batch; its width = tokens computed in it), never through timings.
"""

from __future__ import annotations

import asyncio

import pytest

from core.errors import GenerationBusy
from core.events import ChatMessage, FinishReason, GenerationParams, GenerationRequest
from core.generation.relay import NOT_TEXT
from core.generation.transformers_backend import TransformersGenerator
from tests.generation.steps import Gate, Steps

PROMPTS = ["hello there", "what is your name?", "你好，今天天气很好", "the quick brown fox", "I am fine", "how are you today?"]


def greedy(max_new_tokens=16, **params):
    return GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0, **params) if "repetition_penalty" not in params else GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0, **params)


def request(text, user="u", conversation=None, params=None, history=()):
    messages = (*history, ChatMessage("user", text))
    return GenerationRequest(messages, params or greedy(), conversation_id=conversation or f"{user}:{text}", user_id=user)


async def collect(gen, req):
    return [chunk async for chunk in gen.stream(req)]


def text_of(chunks):
    return "".join(c.text for c in chunks)


@pytest.fixture(scope="module", params=["static", "transformers"])
def batched(request, llama_dir):
    gen = asyncio.run(TransformersGenerator.load(
        str(llama_dir), batching=True, max_batch_size=4, max_queue=8, max_active_per_user=2, max_waiting_per_user=4,
        engine=request.param,
    ))
    assert gen._shared.batcher.engine == request.param
    yield gen
    asyncio.run(gen.aclose())


@pytest.fixture
def steps(batched):
    recorder = Steps(batched.model)
    yield recorder
    recorder.close()


async def settle(condition, within=60.0):
    """Poll until ``condition()`` holds; the batch thread advances on its own (generous limit)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not condition():
        if loop.time() > give_up:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.002)


def reference(gen, text, n, penalty):
    import torch

    ids = gen.prompt_ids((ChatMessage("user", text),))
    out = gen.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=n,
                             do_sample=False, repetition_penalty=penalty, eos_token_id=gen.stop_ids, pad_token_id=0)
    text = gen.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    return text.replace(NOT_TEXT, "").lstrip()  # what relay lets through: no U+FFFD (bytes that are no UTF-8)


@pytest.mark.parametrize("penalty", [1.0, 1.3])
async def test_concurrent_greedy_equals_sequential_generate(batched, steps, penalty):
    params = greedy(20, repetition_penalty=penalty)
    results = await asyncio.gather(*(collect(batched, request(p, user=f"u{i}", params=params)) for i, p in enumerate(PROMPTS)))
    assert max(steps.widths) > 1  # requests really shared forward passes
    for prompt, chunks in zip(PROMPTS, results):
        assert chunks[-1].finish_reason is FinishReason.LENGTH
        assert text_of(chunks) == reference(batched, prompt, 20, penalty)


async def test_flooding_user_does_not_delay_another_users_first_token(batched):
    batcher = batched._shared.batcher
    first_token: dict[str, asyncio.Event] = {}
    original = batcher._on_output

    def spy(output):
        first_token.setdefault(output.request_id, asyncio.Event()).set()
        original(output)

    batcher._on_output = spy
    gate = Gate(batched.model)
    try:
        flood = [asyncio.create_task(collect(batched, request(f"flood {i}", user="A", params=greedy(60)))) for i in range(6)]
        await settle(lambda: batcher.active == 2 and batcher.waiting == 4)
        queued_a = {r.rid for q in batcher._waiting.values() for r in q}
        await settle(lambda: len(first_token) == 2)  # both running requests are past their prefill
        gate.enabled = True
        assert await asyncio.to_thread(gate.waiting.wait, 30)  # the batch thread is parked before a step
        other = asyncio.create_task(collect(batched, request("hi", user="B", params=greedy(5))))
        await settle(lambda: any(r.user == "B" for r in batcher._active.values()))
        b_rid = next(rid for rid, r in batcher._active.items() if r.user == "B")
        gate.grant(2)  # the step prepared before B arrived, then the one that admits B
        await asyncio.wait_for(first_token.setdefault(b_rid, asyncio.Event()).wait(), 30)
        assert not queued_a & first_token.keys()  # B overtook the flood's queued requests
    finally:
        gate.open()
        batcher._on_output = original
    assert (await other)[-1].finish_reason is FinishReason.LENGTH
    for task in flood:
        assert (await task)[-1].finish_reason is FinishReason.LENGTH


async def test_full_queue_answers_busy_and_cancel_frees_slots(batched):
    batcher = batched._shared.batcher
    flood = [asyncio.create_task(collect(batched, request(f"x{i}", user="A", conversation=f"c{i}", params=greedy(3000)))) for i in range(6)]
    await settle(lambda: batcher.active == 2 and batcher.waiting == 4)
    with pytest.raises(GenerationBusy):
        await anext(batched.stream(request("one more", user="A", params=greedy(3000))))
    assert batcher.stats["rejected"] >= 1
    # Another user is still served (the per-user cap, not the global one, was hit).
    assert (await collect(batched, request("me too", user="C", params=greedy(3))))[-1].finish_reason is FinishReason.LENGTH
    running = {r.conversation for r in batcher._active.values()}
    assert batched.cancel(running.pop()) == 1
    await settle(lambda: batcher.active == 2 and batcher.waiting == 3)  # the slot went to a waiting request
    for i in range(6):
        batched.cancel(f"c{i}")
    results = await asyncio.gather(*flood)
    assert all(r[-1].finish_reason is FinishReason.CANCELLED for r in results)
    assert batcher.active == 0 and batcher.waiting == 0


async def test_cancelled_requests_leave_the_model_batch(batched, steps):
    long = [asyncio.create_task(collect(batched, request(f"long {i}", user=f"L{i}", conversation=f"long{i}", params=greedy(3000)))) for i in range(2)]
    batcher = batched._shared.batcher
    await settle(lambda: batcher.active == 2 and len(steps) > 3)
    batched.cancel("long0"), batched.cancel("long1")
    await asyncio.gather(*long)
    start = len(steps)
    short = request("short", user="S", params=greedy(8))
    chunks = await collect(batched, short)
    assert chunks[-1].finish_reason is FinishReason.LENGTH
    tail = steps.widths[start:]  # may begin with the step that was in flight when we cancelled
    assert len(tail) in (8, 9)
    # The short prompt alone (a cached prefix may shorten it), then 7 decode steps of 1 token: no one else.
    assert 1 <= tail[-8] <= batched.count_tokens(short.messages) and tail[-7:] == [1] * 7


async def test_timeout_and_stop_string_in_batch(batched):
    batcher = batched._shared.batcher
    chunks = await collect(batched, request("slow", params=greedy(3000, timeout_s=0.2)))
    assert chunks[-1].finish_reason is FinishReason.TIMEOUT
    full = text_of(await collect(batched, request("cut me", params=greedy(40))))
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    chunks = await collect(batched, request("cut me", params=greedy(40, stop=(stop,))))
    assert text_of(chunks) == full[: full.find(stop)] and chunks[-1].finish_reason is FinishReason.STOP_STRING
    assert batcher.active == 0


async def test_next_turn_reuses_the_previous_turns_cache(batched, steps):
    history_text = " ".join(["hello there, how are you today? I am fine, thank you very much."] * 16)
    first = request(history_text, user="R", conversation="R")
    reply = text_of(await collect(batched, first))
    second = request("and then?", user="R", conversation="R", history=(ChatMessage("user", history_text), ChatMessage("assistant", reply)))
    prompt_len = batched.count_tokens(second.messages)
    start = len(steps)
    await collect(batched, second)
    prefill = steps.widths[start]
    assert prompt_len > 300
    assert prefill < prompt_len / 4  # only the tail after the cached prefix was computed
    fresh = request("Hi! " + history_text, user="F", conversation="F")
    start = len(steps)
    await collect(batched, fresh)
    assert steps.widths[start] >= batched.count_tokens(fresh.messages) // 2  # control: no cache for new text


@pytest.mark.parametrize(("temperature", "top_k", "top_p", "penalty"), [(0.7, 50, 0.9, 1.15), (1.3, 5, 1.0, 1.0), (1.0, 1, 1.0, 1.3), (0.9, 0, 0.5, 0.9)])
def test_batched_sampling_filters_like_generate(temperature, top_k, top_p, penalty):
    """The batch's sampling processor leaves the same candidates and logits as generate's chain."""
    import torch
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from core.generation.batching import filter_rows

    torch.manual_seed(3)
    scores = torch.randn(3, 400) * 3
    rows = [[5, 9, 9, 300], [1, 2, 3], [399, 0]]
    chain = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(penalty), TemperatureLogitsWarper(temperature)]
                                + ([TopKLogitsWarper(top_k)] if top_k else []) + ([TopPLogitsWarper(top_p)] if top_p < 1 else []))
    expected = torch.cat([chain(torch.tensor([row]), scores[i : i + 1].clone()) for i, row in enumerate(rows)])
    got = filter_rows(scores.clone(), rows, [(temperature, top_k, top_p, penalty)] * 3)
    assert torch.equal(torch.isfinite(got), torch.isfinite(expected))
    assert torch.allclose(got[torch.isfinite(got)], expected[torch.isfinite(expected)])


async def test_long_prompt_prefilled_in_chunks_while_others_decode(batched, steps):
    long_text = " ".join(["the quick brown fox jumps over the lazy dog, 你好!"] * 60)
    assert batched.count_tokens((ChatMessage("user", long_text),)) > 600  # more than one 512-token step
    params = greedy(12, repetition_penalty=1.2)
    shorts = [asyncio.create_task(collect(batched, request(p, user=f"s{i}", params=params))) for i, p in enumerate(PROMPTS[:2])]
    await settle(lambda: len(steps) > 1)
    long = await collect(batched, request(long_text, user="long", params=params))
    assert text_of(long) == reference(batched, long_text, 12, 1.2)
    for prompt, task in zip(PROMPTS, shorts):
        assert text_of(await task) == reference(batched, prompt, 12, 1.2)
