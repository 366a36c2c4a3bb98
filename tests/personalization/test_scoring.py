"""P(u,i), the decayed interest mean and memory ranking, against hand-computed values."""

import math

import numpy as np
import pytest

from core.personalization.memory import current_facts, lexical_overlap, rank_memories, terms, visible_in
from core.personalization.scoring import (
    combine_interests,
    decayed_weight,
    recency,
    smoothed_similarity,
    update_interest,
)
from core.records import Memory


def test_p_matches_hand_computed_values():
    user = [3.0, 4.0]  # |R| = 5
    items = [[1.0, 0.0], [0.0, 2.0], [-3.0, -4.0]]  # |I| = 1, 2, 5
    # (R.I) / (|R||I| + alpha)
    assert smoothed_similarity(user, items, 0.0) == pytest.approx([3 / 5, 8 / 10, -25 / 25])
    assert smoothed_similarity(user, items, 0.5) == pytest.approx([3 / 5.5, 8 / 10.5, -25 / 25.5])
    assert smoothed_similarity(user, items, 10.0) == pytest.approx([3 / 15, 8 / 20, -25 / 35])


def test_alpha_shrinks_weak_profiles_more_than_strong_ones():
    item = [[1.0, 0.0]]
    strong, weak = [1.0, 0.0], [0.1, 0.0]  # same direction, cosine 1 for both
    assert smoothed_similarity(strong, item, 0.0)[0] == pytest.approx(smoothed_similarity(weak, item, 0.0)[0])
    assert smoothed_similarity(strong, item, 0.1)[0] == pytest.approx(1 / 1.1)
    assert smoothed_similarity(weak, item, 0.1)[0] == pytest.approx(0.1 / 0.2)


def test_zero_vectors_score_zero_not_nan():
    assert smoothed_similarity([0.0, 0.0], [[1.0, 0.0]], 0.1).tolist() == [0.0]
    assert smoothed_similarity([0.0, 0.0], [[1.0, 0.0]], 0.0).tolist() == [0.0]  # 0/0 -> 0
    assert smoothed_similarity([1.0, 0.0], [[0.0, 0.0], [2.0, 0.0]], 0.0).tolist() == [0.0, 1.0]
    assert smoothed_similarity(None, [[1.0, 0.0]], 0.1).tolist() == [0.0]
    assert smoothed_similarity([1.0, 0.0], np.zeros((0, 2)), 0.1).tolist() == []


def test_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match="dimension"):
        smoothed_similarity([1.0, 0.0, 0.0], [[1.0, 0.0]], 0.1)


def test_interest_is_the_exponentially_decayed_mean():
    decay = 0.5
    e1, e2, e3 = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])
    vector, count = update_interest(None, 0, e1, decay)
    assert count == 1 and vector.tolist() == [1.0, 0.0]  # first message: R = e, no bias to zero
    vector, count = update_interest(vector, count, e2, decay)
    assert vector == pytest.approx((0.5 * e1 + e2) / 1.5)
    vector, count = update_interest(vector, count, e3, decay)
    assert count == 3
    assert vector == pytest.approx((0.25 * e1 + 0.5 * e2 + e3) / 1.75)
    assert decayed_weight(3, decay) == pytest.approx(1.75)


def test_linked_interests_combine_by_their_weights():
    decay = 0.5
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    combined = combine_interests([(a, 1), (b, 2), (None, 0)], decay)
    assert combined == pytest.approx((1.0 * a + 1.5 * b) / 2.5)
    assert combine_interests([(None, 0)], decay) is None


def test_recency_halves_every_half_life():
    assert recency(0, 30) == 1.0
    assert recency(30 * 86400, 30) == pytest.approx(0.5)
    assert recency(-5, 30) == 1.0  # clock skew never boosts


def _memory(mid, subject, vector, created=0.0, scope="private", superseded_by=None):
    return Memory(mid, "telegram:1", subject, f"fact {mid}", tuple(vector), scope, created, superseded_by)


def test_ranking_orders_by_similarity_then_recency():
    memories = [
        _memory(1, "home", [1.0, 0.0], created=0.0),
        _memory(2, "pet", [0.0, 1.0], created=0.0),
        _memory(3, "work", [0.7071, 0.7071], created=0.0),
    ]
    ranked = rank_memories([1.0, 0.0], memories, alpha=0.0, now=0.0, recency_weight=0.0, half_life_days=30)
    assert [r.memory.id for r in ranked] == [1, 3, 2]
    assert ranked[0].score == pytest.approx(1.0)
    # equal similarity: the newer fact wins through the recency term
    twins = [_memory(1, "a", [1.0, 0.0], created=0.0), _memory(2, "b", [1.0, 0.0], created=30 * 86400.0)]
    ranked = rank_memories([1.0, 0.0], twins, alpha=0.1, now=30 * 86400.0, recency_weight=0.1, half_life_days=30)
    assert [r.memory.id for r in ranked] == [2, 1]
    assert ranked[0].score == pytest.approx(1 / 1.1 + 0.1) and ranked[1].score == pytest.approx(1 / 1.1 + 0.05)


def test_ranking_skips_memories_without_comparable_embeddings():
    memories = [_memory(1, "a", [1.0, 0.0]), Memory(2, "u", "b", "x", None, "private", 0.0), _memory(3, "c", [1.0, 0.0, 0.0])]
    ranked = rank_memories([1.0, 0.0], memories, alpha=0.1, now=0.0, recency_weight=0.0, half_life_days=1)
    assert [r.memory.id for r in ranked] == [1]
    assert rank_memories(None, memories, alpha=0.1, now=0.0, recency_weight=0.0, half_life_days=1) == []


def test_current_facts_keep_the_newest_per_subject_across_identities():
    old = Memory(1, "telegram:1", "home", "I live in Berlin.", None, "private", 10.0)
    new = Memory(7, "discord:9", "home", "I live in Paris.", None, "private", 20.0)
    gone = Memory(3, "telegram:1", "pet", "x", None, "private", 5.0, superseded_by=4)
    pet = Memory(4, "telegram:1", "pet", "I have a dog named Rex.", None, "group", 6.0)
    assert current_facts([old, new, gone, pet]) == [pet, new]


def test_private_memories_stay_out_of_groups_unless_allowed():
    private = _memory(1, "home", [1.0, 0.0], scope="private")
    public = _memory(2, "pet", [1.0, 0.0], scope="group")
    assert visible_in([private, public], group_chat=False, private_in_groups=False) == [private, public]
    assert visible_in([private, public], group_chat=True, private_in_groups=False) == [public]
    assert visible_in([private, public], group_chat=True, private_in_groups=True) == [private, public]


def test_terms_are_words_and_cjk_character_pairs():
    assert terms("我住在北京") == {"我住", "住在", "在北", "北京"}
    assert terms("I'm 小明, OK!") == {"i", "m", "小明", "ok"}
    assert terms("猫") == {"猫"} and terms("") == set()


def test_lexical_overlap_is_the_idf_weighted_share_of_query_terms():
    texts = ["I live in Berlin.", "I am allergic to peanuts."]
    idf_i, idf_live, idf_unseen = math.log(1.2), math.log(2.0), math.log(6.0)
    total = idf_i + idf_live + 2 * idf_unseen  # query terms: where, do, i, live
    assert lexical_overlap("Where do I live", texts) == pytest.approx([(idf_i + idf_live) / total, idf_i / total])
    assert lexical_overlap("", texts).tolist() == [0.0, 0.0]
    assert lexical_overlap("anything", []).tolist() == []


def test_the_lexical_term_backs_up_a_weak_embedder():
    # an embedder that cannot tell the facts apart (same vector): words decide
    memories = [_memory(1, "allergy", [1.0, 0.0]), _memory(2, "home", [1.0, 0.0])]
    memories = [Memory(m.id, m.user_id, m.subject, text, m.embedding, m.scope, 0.0) for m, text in
                zip(memories, ["我对鸡蛋过敏", "我住在北京"])]
    ranked = rank_memories([1.0, 0.0], memories, alpha=0.1, now=0.0, recency_weight=0.0, half_life_days=1,
                           query_text="我住在哪里？", lexical_weight=1.0)
    assert [r.memory.id for r in ranked] == [2, 1]
    assert ranked[0].score - ranked[1].score == pytest.approx(lexical_overlap("我住在哪里？", ["我对鸡蛋过敏", "我住在北京"])[1])
