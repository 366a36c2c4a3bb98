"""The static batch engine: rows leaving mid-step, stop checks as tensor ops, the compiled
step, and the int8 path, each checked token for token against ``model.generate``."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import GenerationError
from core.events import ChatMessage, FinishReason, GenerationParams, GenerationRequest
from core.generation.transformers_backend import TransformersGenerator
from tests.generation.steps import Gate, Steps
from tests.generation.tiny import build_model_folder
from tests.generation.test_batching import PROMPTS, collect, greedy, reference, request, settle, text_of


def load(llama_dir, **options):
    return asyncio.run(TransformersGenerator.load(str(llama_dir), batching=True, max_batch_size=4, max_active_per_user=4,
                                                  engine="static", **options))


@pytest.fixture(scope="module")
def static(llama_dir):
    gen = load(llama_dir)
    yield gen
    asyncio.run(gen.aclose())


async def test_a_row_cancelled_mid_step_leaves_and_the_others_stay_exact(static):
    """Cancel the first of four rows while a step is parked: the batch is three rows wide from the
    next step on, and the row moved into its place (keys, values, penalties) still decodes exactly."""
    engine = static._shared.batcher._manager
    steps, gate = Steps(static.model), Gate(static.model)
    params = greedy(30, repetition_penalty=1.3)
    sampled = GenerationParams(max_new_tokens=30, temperature=1.0, top_k=20, top_p=0.9, repetition_penalty=1.1)
    texts = PROMPTS[:3]
    try:
        tasks = [asyncio.create_task(collect(static, request("sampled", user="s", conversation="s", params=sampled)))]
        await settle(lambda: engine.active == 1)  # row 0
        tasks += [asyncio.create_task(collect(static, request(t, user=f"g{i}", conversation=f"g{i}", params=params))) for i, t in enumerate(texts)]
        await settle(lambda: engine.active == 4)
        seen = len(steps)
        await settle(lambda: len(steps) >= seen + 2)  # decoding four rows at a time (greedy beside sampled)
        gate.enabled = True
        assert await asyncio.to_thread(gate.waiting.wait, 30)
        parked = len(steps) - 1  # its width is recorded before the gate holds it
        assert static.cancel("s") == 1
        gate.open()
        results = await asyncio.gather(*tasks)
    finally:
        gate.open()
        steps.close()
    assert results[0][-1].finish_reason is FinishReason.CANCELLED
    after = steps.widths[parked:]
    assert after[0] == 4 and after[1] == 3 and max(after[1:]) == 3
    for text, chunks in zip(texts, results[1:]):  # the last one now lives in row 0
        assert chunks[-1].finish_reason is FinishReason.LENGTH
        assert text_of(chunks) == reference(static, text, 30, 1.3)
    assert engine.active == 0


async def test_stop_tokens_and_limits_are_checked_in_the_step(llama_dir):
    """A stop id ends a row on the step that samples it (kept, like eos); a limit of one ends at the prefill."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.generation.engine import StaticEngine

    model = AutoModelForCausalLM.from_pretrained(str(llama_dir)).eval()
    ids = list(range(10, 30))
    with torch.inference_mode():
        ref = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=20,
                             do_sample=False, repetition_penalty=1.0, eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
    k = next(i for i in range(2, len(ref)) if ref[i] not in ref[:i])
    engine = StaticEngine(model, [ref[k]], max_batch_size=2, context_window=256)
    engine.start()
    done: dict[str, asyncio.Future] = {}
    try:
        for rid, limit in (("stop", 20), ("one", 1)):
            future = done[rid] = asyncio.get_running_loop().create_future()
            engine.register_result_handler(rid, lambda out, f=future: out.is_finished() and f.set_result(out))
            engine.add_request(ids, request_id=rid, max_new_tokens=limit)
        stopped, one = await asyncio.wait_for(asyncio.gather(done["stop"], done["one"]), 60)
    finally:
        engine.stop()
    assert stopped.generated_tokens == ref[: k + 1] and stopped.error is None
    assert one.generated_tokens == ref[:1]
    assert engine.active == 0


async def test_the_cache_holds_the_rows_in_use_and_grows_exactly(llama_dir):
    """A 16-wide engine serving one chat keeps one row of keys and values; eight different
    prompts at once grow it to eight rows, copying the rows already held, and every
    reply still equals ``generate``'s."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.generation.engine import StaticEngine

    model = AutoModelForCausalLM.from_pretrained(str(llama_dir)).eval()
    prompts = [list(range(10 + i, 22 + 2 * i)) for i in range(8)]

    def generate(ids):
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=10, do_sample=False, repetition_penalty=1.0, eos_token_id=None, pad_token_id=0)
        return out[0, len(ids):].tolist()

    engine = StaticEngine(model, [], max_batch_size=16, context_window=256)
    engine.start()

    async def run(batch):
        futures = []
        for ids in batch:
            future = asyncio.get_running_loop().create_future()
            rid = f"r{len(futures)}-{ids[0]}-{len(batch)}"
            engine.register_result_handler(rid, lambda out, f=future: out.is_finished() and not f.done() and f.set_result(out))
            engine.add_request(ids, request_id=rid, max_new_tokens=10)
            futures.append(future)
        return [out.generated_tokens for out in await asyncio.wait_for(asyncio.gather(*futures), 120)]

    try:
        first = await run(prompts[:1])
        one_row = engine.decoder.allocated
        together = await run(prompts)
    finally:
        engine.stop()
    assert one_row == 1 and engine.decoder.keys[0].shape[0] == engine.decoder.allocated
    assert 8 <= engine.decoder.allocated <= 16 < engine.rows
    assert first == [generate(prompts[0])]
    assert together == [generate(ids) for ids in prompts]


@pytest.mark.parametrize("penalty", [1.0, 1.3])
async def test_compiled_step_greedy_equals_generate(tmp_path, penalty):
    folder = build_model_folder(tmp_path / "compiled")  # its own copy: a loaded model's batch options are set once
    gen = await TransformersGenerator.load(str(folder), batching=True, max_batch_size=4, max_active_per_user=4,
                                           engine="static", compile=True)
    try:
        engine = gen._shared.batcher._manager
        assert engine.compile
        params = greedy(12, repetition_penalty=penalty, timeout_s=600)  # the engine compiles first (a minute on a busy CPU)
        results = await asyncio.gather(*(collect(gen, request(p, user=f"c{i}", params=params)) for i, p in enumerate(PROMPTS[:4])))
        for prompt, chunks in zip(PROMPTS, results):
            assert text_of(chunks) == reference(gen, prompt, 12, penalty)
        # compiled over the whole cache: no shape changes, so no recompiling while users wait
        assert (engine.decoder.allocated, engine.decoder.length) == (engine.rows, engine.decoder.max_length)
    finally:
        await gen.aclose()


async def test_a_decode_step_that_fails_to_compile_decodes_uncompiled(tmp_path, monkeypatch):
    import torch

    def broken_compile(fn, **_):
        def compiled(*args):
            raise RuntimeError("no C++ compiler")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    folder = build_model_folder(tmp_path / "uncompilable")
    gen = await TransformersGenerator.load(str(folder), batching=True, max_batch_size=4, max_active_per_user=4,
                                           engine="static", compile=True)
    try:
        chunks = await collect(gen, request(PROMPTS[0], user="u", params=greedy(8, timeout_s=120)))
        assert text_of(chunks) == reference(gen, PROMPTS[0], 8, 1.0)
    finally:
        await gen.aclose()


async def test_int8_model_loads_and_greedy_equals_its_generate(llama_dir):
    """One reply at a time it is exact. Together they differ slightly: dynamic quantization scales
    the activations of a whole step at once (docs/performance.md), so only completion is checked."""
    from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear

    gen = await TransformersGenerator.load(str(llama_dir), batching=True, max_batch_size=4, max_active_per_user=4, quantize="int8")
    try:
        assert isinstance(gen.model.model.layers[0].self_attn.q_proj, QuantizedLinear)
        assert isinstance(gen.model.lm_head, QuantizedLinear)
        assert (await gen.health())["dtype"].startswith("int8")
        assert gen._shared.batcher.engine == "static"
        params = greedy(16, repetition_penalty=1.2)
        for i, prompt in enumerate(PROMPTS[:3]):
            assert text_of(await collect(gen, request(prompt, user=f"q{i}", params=params))) == reference(gen, prompt, 16, 1.2)
        together = await asyncio.gather(*(collect(gen, request(p, user=f"t{i}", params=params)) for i, p in enumerate(PROMPTS[:4])))
        assert all(chunks[-1].finish_reason is FinishReason.LENGTH and text_of(chunks) for chunks in together)
    finally:
        await gen.aclose()


async def test_int8_on_the_sequential_path_generates(llama_dir):
    gen = await TransformersGenerator.load(str(llama_dir), batching=False, quantize="int8")
    try:
        chunks = await collect(gen, GenerationRequest((ChatMessage("user", "你好"),), greedy(8)))
        assert text_of(chunks).strip() and chunks[-1].finish_reason is FinishReason.LENGTH
    finally:
        await gen.aclose()


def test_quantization_is_refused_where_it_cannot_run(llama_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from core.generation.quantize import quantize_model

    model = AutoModelForCausalLM.from_pretrained(str(llama_dir))
    with pytest.raises(GenerationError, match="int4"):
        quantize_model(model, "int4", "cpu")
    with pytest.raises(GenerationError, match="CPU only"):
        quantize_model(model, "int8", "cuda")
    with pytest.raises(GenerationError, match="float32"):
        quantize_model(model.to(torch.bfloat16), "int8", "cpu")


@pytest.mark.parametrize(("arch", "kv_heads"), [("llama", 2), ("mistral", 2), ("qwen2", 4), ("qwen3", 2)])
async def test_llama_family_architectures_decode_exactly(tmp_path, arch, kv_heads):
    """Grouped-query attention, qwen2's projection biases and qwen3's q/k norms, on the static engine."""
    folder = build_model_folder(tmp_path / arch, arch=arch, kv_heads=kv_heads)
    gen = await TransformersGenerator.load(str(folder), batching=True, max_batch_size=4, max_active_per_user=4, engine="static")
    try:
        params = greedy(12, repetition_penalty=1.2)
        results = await asyncio.gather(*(collect(gen, request(p, user=f"a{i}", params=params)) for i, p in enumerate(PROMPTS[:3])))
        for prompt, chunks in zip(PROMPTS, results):
            assert text_of(chunks) == reference(gen, prompt, 12, 1.2)
    finally:
        await gen.aclose()


def test_the_static_engine_refuses_a_model_it_cannot_run(gpt2_dir):
    with pytest.raises(GenerationError, match="gpt2"):
        asyncio.run(TransformersGenerator.load(str(gpt2_dir), batching=True, engine="static"))
    gen = asyncio.run(TransformersGenerator.load(str(gpt2_dir), batching=True))
    try:
        assert gen._shared.batcher.engine == "transformers"  # auto: transformers' engine serves it
    finally:
        asyncio.run(gen.aclose())


@pytest.mark.parametrize("tied", [True, False])
def test_the_output_head_is_stored_transposed_and_stays_tied(tied):
    """The static engine lays the head's weight out as [hidden, vocab] in memory: the model's
    logits stay the same, a tied input embedding is still the same parameter, no copy is kept."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.generation.decode import DecodeModel

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=128, tie_word_embeddings=tied)
    model = LlamaForCausalLM(config).eval()
    ids = torch.tensor([[3, 5, 7, 11]])
    with torch.inference_mode():
        before = model(ids).logits
    DecodeModel(model, rows=2, max_length=64)
    weight = model.lm_head.weight
    with torch.inference_mode():
        after = model(ids).logits
    assert weight.shape == (64, 32) and not weight.is_contiguous() and weight.t().is_contiguous()
    assert (model.model.embed_tokens.weight is weight) == tied
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    torch.testing.assert_close(after, before)
