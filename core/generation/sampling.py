"""Per-row sampling controls for a batch, as tensor ops (no Python per row).

Applies, per row and in ``generate``'s order: repetition penalty (every token already in
the row's sequence, prompt and reply, has its logit divided by the penalty when positive,
multiplied when negative), temperature, top-k and top-p. One ``topk`` over the largest
requested k replaces full-vocabulary sorts, which dominate a small model's step on a CPU.
Greedy rows take the argmax of the penalised logits, as ``generate`` does.

Work no row needs is skipped, from Python mirrors of the parameters: the penalty pass when
every row's penalty is 1 (the default), the argmax when no row is greedy. Each is a pass
over ``[rows, vocabulary]``, which at 32 rows cost more than the rest of sampling.
"""

from __future__ import annotations

from typing import Any


def penalise(scores: Any, seen: Any, penalty: Any) -> Any:
    """``scores`` [B, V] with the repetition penalty [B] applied where ``seen`` [B, V] is set."""
    import torch

    factor = penalty[:, None]
    return torch.where(seen, torch.where(scores < 0, scores * factor, scores / factor), scores)


def filter_top(scores: Any, temperature: Any, top_k: Any, top_p: Any, k_max: int) -> tuple[Any, Any]:
    """(candidate logits [B, k_max] after temperature, top-k and top-p, their token ids).

    ``top_k`` [B] holds each row's k (1..k_max); filtered-out candidates are ``-inf``.
    """
    import torch

    values, index = (scores / temperature[:, None]).topk(k_max, dim=-1)  # sorted, largest first
    ranks = torch.arange(k_max, device=scores.device)
    values = values.masked_fill(ranks >= top_k[:, None], float("-inf"))
    probs = values.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # probability mass ranked above each candidate
    return values.masked_fill(before >= top_p[:, None], float("-inf")), index


def filtered_logits(scores: Any, seen: Any, temperature: Any, top_k: Any, top_p: Any, penalty: Any) -> Any:
    """Full-vocabulary logits [B, V] as ``generate``'s processor chain leaves them (-inf = removed)."""
    import torch

    vocab = scores.size(-1)
    top_k = torch.where((top_k <= 0) | (top_k > vocab), vocab, top_k)
    values, index = filter_top(penalise(scores, seen, penalty), temperature, top_k, top_p, int(top_k.max()))
    return torch.full_like(scores, float("-inf")).scatter_(1, index, values)


def sample(scores: Any, seen: Any, params: "RowParams", rows: int, generator: Any) -> Any:
    """Next token [rows] for the first ``rows`` rows of ``params``, from ``scores`` [rows, V]."""
    import torch

    if params.any_penalty(rows):
        scores = penalise(scores, seen[:rows], params.penalty[:rows])
    k_max = params.k_max(rows)
    if k_max == 0:  # every row greedy
        return scores.argmax(dim=-1)
    values, index = filter_top(scores, params.temperature[:rows], params.top_k[:rows], params.top_p[:rows], k_max)
    choice = index.gather(1, torch.multinomial(values.softmax(dim=-1), 1, generator=generator))[:, 0]
    if not params.any_greedy(rows):
        return choice
    return torch.where(params.greedy[:rows], scores.argmax(dim=-1), choice)


class RowParams:
    """Sampling parameters of each cache row, as tensors, with Python mirrors of top-k and penalty."""

    def __init__(self, rows: int, vocab: int, device: Any) -> None:
        import torch

        self.vocab = vocab
        self.temperature = torch.ones(rows, device=device)
        self.top_k = torch.ones(rows, dtype=torch.long, device=device)
        self.top_p = torch.ones(rows, device=device)
        self.penalty = torch.ones(rows, device=device)
        self.greedy = torch.ones(rows, dtype=torch.bool, device=device)
        self._k = [0] * rows  # 0 for a greedy row
        self._penalty = [1.0] * rows

    def set(self, row: int, temperature: float, top_k: int, top_p: float, penalty: float) -> None:
        """``temperature <= 0`` means greedy; ``top_k <= 0`` means the whole vocabulary."""
        greedy = temperature <= 0
        k = 0 if greedy else min(top_k, self.vocab) if top_k > 0 else self.vocab
        self.temperature[row] = 1.0 if greedy else temperature
        self.top_k[row] = max(k, 1)
        self.top_p[row] = 1.0 if greedy else top_p
        self.penalty[row] = penalty
        self.greedy[row] = greedy
        self._k[row] = k
        self._penalty[row] = penalty

    def swap(self, a: int, b: int) -> None:
        for t in (self.temperature, self.top_k, self.top_p, self.penalty, self.greedy):
            t[[a, b]] = t[[b, a]]
        for mirror in (self._k, self._penalty):
            mirror[a], mirror[b] = mirror[b], mirror[a]

    def window(self, first: int, count: int) -> "RowParams":
        """Rows ``first..first+count-1`` as parameters of their own (views: a prefill's rows)."""
        view = object.__new__(RowParams)
        view.__dict__ = {name: value if name == "vocab" else value[first : first + count] for name, value in vars(self).items()}
        return view

    def k_max(self, rows: int) -> int:
        return max(self._k[:rows], default=0)

    def any_penalty(self, rows: int) -> bool:
        return any(p != 1.0 for p in self._penalty[:rows])

    def any_greedy(self, rows: int) -> bool:
        return 0 in self._k[:rows]
