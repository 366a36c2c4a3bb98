"""Evaluation metrics on hand-made cases with known answers, and the eval command end to end."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from transformers import AutoTokenizer
from typer.testing import CliRunner

from bots.training_cli import register
from core.errors import ConfigError
from training.evaluate import (
    LMScorer,
    RankExample,
    TfidfRetrievalScorer,
    build_rank_examples,
    distinct_n,
    hits_at_1,
    load_model,
)
from tests.training.conftest import conversation


class OracleScorer:
    """Knows each context's true reply: the metric must report a perfect score."""

    def __init__(self, truth):
        self.truth = truth  # last context message -> true reply

    def score(self, context, candidates):
        return [1.0 if c == self.truth[context[-1]["content"]] else 0.0 for c in candidates]


class ConstantScorer:
    def score(self, context, candidates):
        return [0.5] * len(candidates)


def _convs(n):
    return [{"id": f"c{i}", "source": "t", "turns": [{"role": "user", "text": f"question {i}"},
                                                     {"role": "assistant", "text": f"answer {i}"},
                                                     {"role": "user", "text": f"thanks {i}"},
                                                     {"role": "assistant", "text": f"welcome {i}"}]} for i in range(n)]


def test_rank_examples_use_replies_of_other_conversations():
    convs = _convs(25)
    examples = build_rank_examples(convs, 10, seed=1)
    assert len(examples) == 10
    for ex in examples:
        assert len(ex.candidates) == 20 and ex.context[-1]["role"] == "user"
        own = ex.context[-1]["content"].split()[-1]
        assert ex.candidates[0].split()[-1] == own  # the true reply is first...
        assert all(c.split()[-1] != own for c in ex.candidates[1:])  # ...and distractors come from elsewhere


def test_rank_examples_need_enough_replies():
    with pytest.raises(ConfigError):
        build_rank_examples(_convs(3), 5)


def test_hits_perfect_chance_and_ties():
    examples = build_rank_examples(_convs(25), 25)
    truth = {ex.context[-1]["content"]: ex.candidates[0] for ex in examples}
    assert hits_at_1(OracleScorer(truth), examples) == 1.0
    assert hits_at_1(ConstantScorer(), examples) == 0.0  # ties are misses, never free hits


def test_distinct_n_known_values():
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["你好你好"], 1) == pytest.approx(2 / 4)
    assert distinct_n([""], 1) == 0.0


def test_tfidf_retrieval_finds_the_reply_of_a_seen_context():
    train = [{"id": "t", "source": "t", "turns": [{"role": "user", "text": "what is your favourite pizza topping"},
                                                  {"role": "assistant", "text": "pineapple on pizza forever"}]},
             {"id": "u", "source": "t", "turns": [{"role": "user", "text": "do you like rainy weather"},
                                                  {"role": "assistant", "text": "rain makes me sleepy"}]}]
    scorer = TfidfRetrievalScorer(train, k=1)
    ex = RankExample(({"role": "user", "content": "favourite pizza topping?"},),
                     ("I love pineapple pizza", "rain all day", "my cat sleeps"))
    assert hits_at_1(scorer, [ex]) == 1.0


def test_lm_scorer_prefers_what_the_model_learned(tiny_tokenizer_dir):
    """A model trained on one exchange ranks its reply above unrelated ones."""
    from training.train import TrainConfig, build_model, collate, conversation_windows

    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    model = build_model(TrainConfig(data="-", out="-", hidden_size=32, layers=1, heads=2, intermediate_size=64, block_size=64), tok)
    conv = {"turns": [{"role": "user", "text": "do you have any pets at home?"}, {"role": "assistant", "text": "yes, a cat and two dogs"}]}
    batch = collate(conversation_windows(tok, [conv], 64, "assistant"), tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ex = RankExample(({"role": "user", "content": "do you have any pets at home?"},),
                     ("yes, a cat and two dogs", "i like hiking and reading books", "天气很好，我们去公园吧"))
    scores = LMScorer(model, tok).score(ex.context, ex.candidates)
    assert scores[0] > max(scores[1:])


def test_eval_command_writes_reports(tmp_path, tiny_data_dir, tiny_llama_dir):
    app = typer.Typer()
    register(app)
    md, js = tmp_path / "eval.md", tmp_path / "eval.json"
    # the tiny test split has 4 conversations: too few for 20 candidates -> clear error
    bad = CliRunner().invoke(app, ["eval", str(tiny_llama_dir), "--data", str(tiny_data_dir), "--md", str(md), "--json", str(js)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train", "valid", "test"):
        n = 12 if name == "test" else 6
        (data / f"{name}.jsonl").write_text("".join(json.dumps(conversation(i)) + "\n" for i in range(n)), encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(tiny_llama_dir), "--data", str(data), "--n-rank", "5", "--n-samples", "2",
                                      "--n-ppl-windows", "8", "--md", str(md), "--json", str(js)])
    assert result.exit_code == 0, result.output
    report = json.loads(js.read_text())
    llama, retrieval = report["results"]
    assert llama["type"] == "llama" and retrieval["model"] == "tfidf-retrieval"
    vocab = len(AutoTokenizer.from_pretrained(str(tiny_llama_dir)))
    # An untrained model is close to uniform over the vocabulary: perplexity near its size.
    assert vocab / 3 < llama["perplexity"] < 3 * vocab
    assert report["rank_examples"] == 5
    assert llama["hits@1/20"] * 5 == round(llama["hits@1/20"] * 5)  # a share of the 5 ranked examples
    assert "| model |" in md.read_text() and "tfidf-retrieval" in md.read_text()


def test_load_model_rejects_non_model_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a model folder"):
        load_model(tmp_path)
