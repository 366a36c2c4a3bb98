"""Grounded evaluation: scoring rules, and the whole path (bot, chat service, prompt
builder, transformers generator) on a tiny model trained to know the answers."""

import asyncio

import pytest

import adapters.platforms  # noqa: F401  (the bot files' platform sections)

from core.prompt import passage_section
from training.grounded import render_turns, bundled_personas
from training.grounded_eval import (
    DEMO_BOT,
    Conversations,
    Outcome,
    contains,
    eval_examples,
    language_of,
    score,
    sources_in_prompt,
    split_sources,
    summarize,
)


def test_language_of_counts_cjk_against_latin_letters():
    assert language_of("你叫李明。") == "zh"
    assert language_of("Your name is Sam.") == "en"
    assert language_of("好的, Sam!") == "zh"  # two characters carry about as much as "Sam"
    assert language_of("123 !!") is None


def test_sources_are_split_off_and_checked_against_the_prompt():
    reply = "Within 30 days.\n\nSources: refunds.md › Refunds; faq.md"
    assert split_sources(reply) == ("Within 30 days.", ["refunds.md › Refunds", "faq.md"])
    prompt = "[refunds.md › Refunds] You can ask... [faq.md] More."
    assert sources_in_prompt(reply, prompt)
    assert not sources_in_prompt(reply, "[refunds.md › Refunds] only this one")
    assert sources_in_prompt("no sources here", "")


def test_scores_per_language_and_kind():
    examples = eval_examples(2, seed=0)
    recall = next(e for e in examples if e.kind == "recall" and e.lang == "en")
    abstain = next(e for e in examples if e.kind == "abstain" and e.lang == "zh")
    assert score(recall, f"It is {recall.expect[0]}!").ok
    assert not score(recall, "I don't know.").ok
    assert score(abstain, "我还不知道。").ok
    from training.grounded_lists import ENTITIES

    invented = ENTITIES["zh"][abstain.slot][0]
    assert not score(abstain, f"是{invented}。").ok
    outcomes = [Outcome("en", "recall", "q", "Sam", True), Outcome("en", "recall", "q", "你好", False),
                Outcome("zh", "abstain", "q", "不知道", True, sources_ok=False)]
    summary = summarize(outcomes)
    assert summary["en"]["fact_recall"] == 0.5 and summary["en"]["language_match"] == 0.5
    assert summary["zh"]["abstention"] == 1.0 and summary["zh"]["sources_only_from_prompt"] is False


def test_eval_examples_are_balanced_and_use_held_out_values_only():
    from training.grounded import split_entities

    train, _ = split_entities()
    examples = eval_examples(3, seed=1)
    kinds = sorted((e.lang, e.kind) for e in examples)
    assert kinds == sorted([(lang, kind) for lang in ("en", "zh") for kind in ("recall", "abstain", "passage")] * 3)
    trained = {v for lang in train.entities for vs in train.entities[lang].values() for v in vs}
    for example in examples:
        assert len(example.history) == 1
        for value in example.expect:
            assert value not in trained


def test_a_tiny_model_that_learned_the_answers_scores_full_marks(tmp_path):
    """Train a tiny Llama on two held-out conversations exactly as the bot renders them,
    then evaluate it through the demo bot: recall and abstention must both succeed."""
    import torch

    from training.tokenizer import encode_conversation, train_tokenizer
    from training.train import TrainConfig, build_model, collate, save_model

    examples = eval_examples(1, seed=3)
    chosen = [next(e for e in examples if e.kind == kind and e.lang == "en") for kind in ("recall", "abstain")]
    persona = bundled_personas().get("companion")
    for example in chosen:
        example.persona = "companion"
    conversations = [render_turns(persona, example) for example in chosen]
    tok = train_tokenizer([t["text"] for turns in conversations for t in turns] * 3, vocab_size=500, min_frequency=1)
    cfg = TrainConfig(data="", out="", hidden_size=64, layers=2, heads=2, intermediate_size=128, block_size=512)
    torch.manual_seed(0)
    model = build_model(cfg, tok)
    encoded = [encode_conversation(tok, turns, "assistant") for turns in conversations]
    batch = collate([(ids, [t if m else -100 for t, m in zip(ids, mask)]) for ids, mask, _ in encoded], tok.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(150):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    folder = tmp_path / "tiny"
    save_model(model, tok, folder, "transformer")

    bot = Conversations(DEMO_BOT, str(folder), [], {"temperature": 0.0, "max_new_tokens": 48})
    results = asyncio.run(bot.run([(e.history[-1].content, e.sections) for e in chosen]))
    outcomes = [score(example, reply) for example, (reply, _) in zip(chosen, results)]
    assert [o.ok for o in outcomes] == [True, True], [o.reply for o in outcomes]
    assert contains(outcomes[0].reply, chosen[0].expect[0])
    assert all(prompt.startswith("prompt for ") and "--- memories:" in prompt for _, prompt in results if chosen[0].sections)


@pytest.mark.parametrize("source", ["refunds.md › Refunds"])
def test_passage_sections_name_their_source(source):
    section = passage_section(source, "Within 30 days.")
    assert section.source == source and section.text.startswith(f"[{source}]")
