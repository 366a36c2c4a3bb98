"""Evaluation on the held-out test split.

- perplexity of the reply (assistant) tokens given the conversation so far;
- Hits@1/20: the true reply is ranked against 19 replies from *other* test
  conversations by length-normalised log-likelihood given the context; a hit needs a
  strictly higher score than every distractor (ties count as misses);
- distinct-1/2 and mean length (words) of sampled replies;
- a TF-IDF retrieval baseline (nearest training contexts' replies) on the same Hits@1/20.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import ConfigError
from training.data import strip_stopwords, words


@dataclass(frozen=True)
class RankExample:
    context: tuple[dict[str, str], ...]  # chat messages {"role", "content"}
    candidates: tuple[str, ...]  # candidates[0] is the true reply


class ReplyScorer(Protocol):
    def score(self, context: Sequence[dict[str, str]], candidates: Sequence[str]) -> list[float]: ...


def _messages(turns: Sequence[dict[str, str]]) -> tuple[dict[str, str], ...]:
    return tuple({"role": t["role"], "content": t["text"]} for t in turns)


def build_rank_examples(convs: list[dict[str, Any]], n_examples: int, n_candidates: int = 20, seed: int = 0) -> list[RankExample]:
    """One example per test conversation (a random assistant turn with its context)."""
    pool = [(ci, t["text"]) for ci, c in enumerate(convs) for t in c["turns"] if t["role"] == "assistant"]
    rng = random.Random(seed)
    order = list(range(len(convs)))
    rng.shuffle(order)
    examples = []
    for ci in order:
        turns = convs[ci]["turns"]
        positions = [i for i, t in enumerate(turns) if t["role"] == "assistant" and i > 0]
        others = [text for cj, text in pool if cj != ci]
        if not positions or len(others) < n_candidates - 1:
            continue
        i = rng.choice(positions)
        distractors = rng.sample(others, n_candidates - 1)
        examples.append(RankExample(_messages(turns[:i]), (turns[i]["text"], *distractors)))
        if len(examples) >= n_examples:
            break
    if not examples:
        raise ConfigError(f"need test conversations with assistant turns and at least {n_candidates} replies in total")
    return examples


def hits_at_1(scorer: ReplyScorer, examples: Sequence[RankExample], progress: Callable = lambda it: it) -> float:
    hits = 0
    for ex in progress(examples):
        scores = scorer.score(ex.context, ex.candidates)
        hits += scores[0] > max(scores[1:])
    return hits / len(examples)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over the replies (words; CJK characters count one)."""
    grams = [tuple(ws[i : i + n]) for ws in map(words, texts) for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


# --- language models -----------------------------------------------------------------
def load_model(path: str | Path) -> tuple[Any, Any]:
    """A causal LM and its tokenizer from a folder (the LSTM baseline included)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.generation.lstm import register_custom_models

    register_custom_models()
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"{path} is not a model folder (no config.json)")
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model, tok


class LMScorer:
    """Length-normalised log-likelihood of each candidate (plus its end token) given the context."""

    def __init__(self, model: Any, tok: Any, max_len: int | None = None) -> None:
        self.model, self.tok = model, tok
        self.max_len = max_len or int(getattr(model.config, "max_position_embeddings", 512))

    def score(self, context: Sequence[dict[str, str]], candidates: Sequence[str]) -> list[float]:
        import torch

        ctx = list(self.tok.apply_chat_template(list(context), add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        end = [self.tok.eos_token_id]
        cands = [self.tok(c, add_special_tokens=False)["input_ids"][: self.max_len // 2] + end for c in candidates]
        seqs, starts = [], []
        for cand in cands:
            keep = ctx[-(self.max_len - len(cand)) :]
            seqs.append(keep + cand)
            starts.append(len(keep))
        n = max(map(len, seqs))
        pad = self.tok.pad_token_id
        ids = torch.tensor([s + [pad] * (n - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs])
        with torch.no_grad():
            logp = self.model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        scores = []
        for b, (seq, start) in enumerate(zip(seqs, starts)):
            targets = torch.tensor(seq[start:])
            lp = logp[b, start - 1 : len(seq) - 1].gather(-1, targets[:, None]).squeeze(-1)
            scores.append(lp.mean().item())
        return scores


def perplexity(model: Any, tok: Any, convs: list[dict[str, Any]], max_windows: int, batch_size: int = 16,
               block: int = 256) -> tuple[float, float]:
    """exp(mean NLL) of assistant tokens (text + end token) given the conversation so far,
    per token and per word (words as :func:`training.data.words` counts them, plus one
    per end of turn), so models with different tokenizers compare. Windows of at most
    ``block`` tokens (or the model's context if shorter), the same for every model."""
    from training.train import conversation_windows, evaluate_loss

    block = min(block, int(getattr(model.config, "max_position_embeddings", block)))
    windows = conversation_windows(tok, convs, block, "assistant")[:max_windows]
    if not windows:
        raise ConfigError("no test windows to compute perplexity on")
    loss = evaluate_loss(model, windows, batch_size, tok.pad_token_id, math.ceil(max_windows / batch_size), model.device)
    targets = [[t for t in labels[1:] if t != -100] for _, labels in windows]
    n_tokens = sum(map(len, targets))
    end = tok.eos_token_id
    n_words = sum(len(words(tok.decode(ids, skip_special_tokens=True))) + ids.count(end) for ids in targets)
    return math.exp(loss), math.exp(loss * n_tokens / max(n_words, 1))


def sample_replies(model: Any, tok: Any, contexts: Sequence[Sequence[dict[str, str]]], max_new_tokens: int = 40, seed: int = 0) -> list[str]:
    import torch

    torch.manual_seed(seed)
    block = int(getattr(model.config, "max_position_embeddings", 512))
    replies = []
    for ctx in contexts:
        ids = tok.apply_chat_template(list(ctx), add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
        ids = ids[:, -(block - max_new_tokens) :]
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=True, temperature=0.8, top_p=0.9, top_k=50,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        replies.append(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    return replies


# --- retrieval baseline ---------------------------------------------------------------
class TfidfRetrievalScorer:
    """Find the k training contexts closest to the last message (TF-IDF, stop words removed);
    a candidate scores its cosine similarity to the mean of their replies."""

    def __init__(self, train_convs: list[dict[str, Any]], k: int = 10) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        queries, replies = [], []
        for conv in train_convs:
            turns = conv["turns"]
            for i in range(1, len(turns)):
                if turns[i]["role"] == "assistant":
                    queries.append(strip_stopwords(turns[i - 1]["text"]))
                    replies.append(strip_stopwords(turns[i]["text"]))
        if not queries:
            raise ConfigError("the training split has no (message, reply) pairs for retrieval")
        self.k = k
        self.q_vec = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True).fit(queries)
        self.r_vec = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True).fit(replies)
        self.q_mat = self.q_vec.transform(queries)
        self.r_mat = self.r_vec.transform(replies)

    def score(self, context: Sequence[dict[str, str]], candidates: Sequence[str]) -> list[float]:
        import numpy as np

        q = self.q_vec.transform([strip_stopwords(context[-1]["content"])])
        sims = (self.q_mat @ q.T).toarray().ravel()
        top = np.argsort(-sims)[: self.k]
        target = np.asarray(self.r_mat[top].mean(axis=0)).ravel()
        cand = self.r_vec.transform([strip_stopwords(c) for c in candidates]).toarray()
        return [float(x) for x in cand @ target]


# --- the whole evaluation -----------------------------------------------------------------
@dataclass
class EvalSettings:
    n_rank: int = 200
    n_ppl_windows: int = 400
    n_samples: int = 50
    seed: int = 0
    ppl_block: int = 256  # perplexity window, the same for every model compared
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate(model_paths: Sequence[str], data_dir: str, settings: EvalSettings, progress: Callable = lambda it, **kw: it) -> dict[str, Any]:
    """All metrics for each model and the retrieval baseline, as JSON-ready data."""
    from training.data import load_split

    test = load_split(data_dir, "test")
    train_convs = load_split(data_dir, "train")
    examples = build_rank_examples(test, settings.n_rank, seed=settings.seed)
    results = []
    for path in model_paths:
        model, tok = load_model(path)
        name = Path(path).name
        row: dict[str, Any] = {"model": name, "path": str(path), "type": model.config.model_type,
                               "parameters": sum(p.numel() for p in model.parameters())}
        row["perplexity"], row["perplexity_per_word"] = perplexity(model, tok, test, settings.n_ppl_windows, block=settings.ppl_block)
        row["hits@1/20"] = hits_at_1(LMScorer(model, tok), examples, progress)
        replies = sample_replies(model, tok, [ex.context for ex in examples[: settings.n_samples]], seed=settings.seed)
        row["distinct-1"] = distinct_n(replies, 1)
        row["distinct-2"] = distinct_n(replies, 2)
        row["mean_length"] = sum(len(words(r)) for r in replies) / max(len(replies), 1)
        row["samples"] = [{"context": ex.context[-1]["content"], "reply": r} for ex, r in zip(examples[:3], replies[:3])]
        results.append(row)
    retrieval = TfidfRetrievalScorer(train_convs)
    results.append({"model": "tfidf-retrieval", "type": "retrieval", "parameters": 0,
                    "perplexity": None, "perplexity_per_word": None, "hits@1/20": hits_at_1(retrieval, examples, progress),
                    "distinct-1": None, "distinct-2": None, "mean_length": None})
    return {"data": str(data_dir), "test_conversations": len(test), "rank_examples": len(examples),
            "ppl_windows": settings.n_ppl_windows, "ppl_block": settings.ppl_block, "samples": settings.n_samples, "seed": settings.seed,
            "chance_hits@1/20": 1 / 20, **settings.extra, "results": results}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if value < 1000 else f"{value:.0f}"
    return str(value)


COLUMNS = [("model", "model"), ("parameters", "params"), ("perplexity", "perplexity/token ↓"),
           ("perplexity_per_word", "perplexity/word ↓"), ("hits@1/20", "Hits@1/20 ↑"),
           ("distinct-1", "distinct-1"), ("distinct-2", "distinct-2"), ("mean_length", "mean length")]


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in report["results"]:
        row = []
        for key, _ in COLUMNS:
            v = r.get(key)
            if key == "parameters":
                row.append(f"{v / 1e6:.2f}M" if v else "–")
            elif key in ("perplexity", "perplexity_per_word"):
                row.append(_fmt(v, 2))
            elif key == "mean_length":
                row.append(_fmt(v, 1))
            else:
                row.append(_fmt(v))
        rows.append(row)
    return rows


def write_reports(report: dict[str, Any], md_path: str | Path, json_path: str | Path) -> None:
    Path(json_path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = ["# Evaluation", "",
             f"Test split of `{report['data']}` ({report['test_conversations']} conversations, never trained on). "
             f"Hits@1/20 on {report['rank_examples']} examples (true reply vs 19 replies from other test conversations, "
             f"ranked by length-normalised log-likelihood; ties count as misses; chance = 0.05). Perplexity over the "
             f"assistant tokens of {report['ppl_windows']} test windows of at most {report.get('ppl_block', 256)} tokens, "
             f"per token and per word (words as `training.data.words` counts them, CJK characters one each, plus one "
             f"per end of turn; comparable across tokenizers). distinct-n and mean length (words) over "
             f"{report['samples']} sampled replies (temperature 0.8, top-p 0.9). Seed {report['seed']}.", ""]
    if report.get("command"):
        lines += ["Command:", "", f"    {report['command']}", ""]
    lines += ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", "The retrieval baseline has no perplexity and samples nothing: it only ranks.", ""]
    for r in report["results"]:
        if r.get("samples"):
            lines += [f"Sample replies of `{r['model']}`:", ""]
            lines += [f"- “{s['context'][:120]}” → “{s['reply'][:160]}”".replace("\n", " ") for s in r["samples"]]
            lines.append("")
    Path(md_path).write_text("\n".join(lines), encoding="utf-8")
