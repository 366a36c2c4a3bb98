"""Batched sampling: the penalty and argmax passes run only for rows that need them, and
skipping them never changes a row's token."""

from __future__ import annotations

import torch

from core.generation.sampling import RowParams, sample


def scores_and_seen():
    scores = torch.tensor([[5.0, 4.0, 1.0, 0.0], [5.0, 4.0, 1.0, 0.0], [5.0, 4.0, 1.0, 0.0]])
    seen = torch.zeros(3, 4, dtype=torch.bool)
    seen[:, 0] = True  # every row has already said token 0
    return scores, seen


def test_a_penalised_row_avoids_its_seen_token_and_the_others_are_untouched():
    scores, seen = scores_and_seen()
    params = RowParams(3, 4, "cpu")
    params.set(0, 1.0, 1, 1.0, 2.0)  # sampled with top-k 1: the best penalised logit (5 / 2 < 4)
    params.set(1, 1.0, 1, 1.0, 1.0)  # no penalty
    params.set(2, 0.0, 0, 1.0, 1.0)  # greedy
    tokens = sample(scores, seen, params, 3, torch.Generator().manual_seed(0))
    assert tokens.tolist() == [1, 0, 0]


def test_rows_without_penalty_or_greedy_rows_sample_the_same_as_with_the_passes():
    scores, seen = scores_and_seen()
    params = RowParams(3, 4, "cpu")
    for row in range(3):
        params.set(row, 0.7, 3, 0.9, 1.0)
    assert not params.any_penalty(3) and not params.any_greedy(3)
    skipped = sample(scores, seen, params, 3, torch.Generator().manual_seed(7))
    params.set(2, 0.0, 0, 1.0, 1.000001)  # one greedy row with a penalty: both passes run for all rows
    assert params.any_penalty(3) and params.any_greedy(3)
    both = sample(scores, seen, params, 3, torch.Generator().manual_seed(7))
    assert both[:2].tolist() == skipped[:2].tolist() and both[2].item() == 0
