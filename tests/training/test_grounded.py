"""Grounded training data: the prompt builder's own output, held-out entities, bad lists."""

import json

import pytest

from core.errors import ConfigError
from core.events import ChatMessage
from core.prompt import MEMORY_INTRO, PASSAGE_INTRO, Budget, plan_prompt
from training.grounded import LANGS, Generator, add_grounded, bundled_personas, split_entities
from training.grounded_kb import ANSWER_LEADS, ANSWER_TAILS, KB_VALUES
from training.grounded_lists import ENTITIES, ZH_CHITCHAT


@pytest.fixture(scope="module")
def pools():
    return split_entities()


@pytest.fixture(scope="module")
def personas():
    return bundled_personas()


def test_rendered_turns_are_exactly_the_prompt_the_chat_service_builds(pools, personas):
    generator = Generator(pools[0], personas, seed=3)
    kinds = set()
    for i in range(200):
        example = generator.example(LANGS[i % 2])
        kinds.add(example.kind)
        turns = generator.render(example)
        # What ChatService.respond sends for this history and these sections, with a
        # budget the size of the model's context (the bundled model has 1,024 tokens).
        built = plan_prompt(personas.get(example.persona), example.history, lambda m: 0, Budget(1024, 60), example.sections)
        assert turns[:-1] == [{"role": m.role, "text": m.content} for m in built.messages]
        assert turns[-1] == {"role": "assistant", "text": example.reply}
        if example.sections:
            context = turns[1]["text"]
            assert context.startswith((MEMORY_INTRO, PASSAGE_INTRO))
    assert {"recall", "abstain", "passage"} <= kinds


def test_replies_use_the_given_facts_and_abstain_without_them(pools, personas):
    generator = Generator(pools[0], personas, seed=5)
    for _ in range(300):
        example = generator.memory_example("zh")
        text = "\n".join(s.text for s in example.sections)
        if example.kind == "recall":
            assert example.expect and all(v in text and v in example.reply for v in example.expect)
        if example.kind == "abstain":
            slot_values = ENTITIES["zh"][example.slot]
            assert not any(value in example.reply for value in slot_values)


def test_entity_split_has_no_leakage_and_no_value_inside_another(pools):
    from training.grounded_eval import contains

    train, held = pools
    for lists_name, lists in (("entities", ENTITIES), ("kb", KB_VALUES)):
        for lang, slots in lists.items():
            for slot in slots:
                a, b = getattr(train, lists_name)[lang][slot], getattr(held, lists_name)[lang][slot]
                assert a and b and not set(a) & set(b)
                assert sorted(a + b) == sorted(set(slots[slot]))
    for lang, slots in ENTITIES.items():
        values = [(slot, v) for slot, vs in slots.items() for v in vs]
        clashes = [(x, y) for _, x in values for _, y in values if x != y and contains(y, x)]
        assert clashes == []  # so "the reply contains the value" names one value only


def test_generated_training_examples_never_name_a_held_out_value(pools, personas):
    train, held = pools
    generator = Generator(train, personas, seed=9)
    held_values = {v for lang in LANGS for vs in held.entities[lang].values() for v in vs}
    for i in range(300):
        example = generator.memory_example(LANGS[i % 2])
        text = " ".join(s.text for s in example.sections) + " " + example.reply
        words = set(text.replace(".", " ").replace("!", " ").split())
        assert not (words & {v for v in held_values if " " not in v and v.isascii()})


def test_invented_values_are_fresh_never_held_out_and_stated_the_way_the_store_keeps_facts(pools, personas):
    from training.grounded_synth import invented_value

    train, held = pools
    generator = Generator(train, personas, seed=4, invented=1.0, avoid=held)
    asked = []
    for i in range(400):
        example = generator.memory_example(LANGS[i % 2])  # each memory went through extract_facts
        if example.kind == "recall":
            value = example.expect[0]
            assert value.lower() in example.reply.lower() and any(value in s.text for s in example.sections)
            assert value not in held.entities[example.lang][example.slot]
            asked.append(value)
    assert len(set(asked)) >= 0.95 * len(asked) > 50  # nothing to memorise: the prompt must be read
    import random

    rng = random.Random(0)
    taken = {invented_value("en", "pet", random.Random(0))}  # the first draw, then refused
    assert invented_value("en", "pet", rng, avoid=taken) not in taken
    plain = Generator(train, personas, seed=4)
    assert all(example.expect[0] in train.entities[example.lang][example.slot]
               for example in (plain.memory_example(LANGS[i % 2]) for i in range(100)) if example.kind == "recall")


def test_an_entity_list_too_small_to_split_is_a_clear_error():
    with pytest.raises(ConfigError, match="'en/pet' has 3 value"):
        split_entities({"en": {"pet": ["Rex", "Max", "Bo"]}}, {})


def test_add_grounded_appends_to_train_and_valid(tmp_path):
    from tests.training.conftest import write_split_dir

    data = write_split_dir(tmp_path / "data")
    counts = add_grounded(data, 40, n_valid=10, seed=0)
    assert sum(v for k, v in counts.items() if k.startswith("train/")) == 40
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    grounded = [r for r in rows if r["source"] == "grounded"]
    assert len(grounded) == 40 and all(r["loss_on"] == "assistant" for r in grounded)
    assert {r["lang"] for r in grounded} == {"en", "zh"}
    assert all(r["turns"][0]["role"] == "system" for r in grounded)


def test_a_few_steps_on_grounded_data_lower_the_loss(tmp_path):
    import torch

    from tests.training.conftest import write_split_dir
    from training.data import load_split
    from training.tokenizer import train_tokenizer
    from training.train import TrainConfig, build_model, collate, conversation_windows

    data = write_split_dir(tmp_path / "data")
    add_grounded(data, 24, n_valid=4, seed=1)
    convs = [c for c in load_split(data, "train") if c["source"] == "grounded"]
    tok = train_tokenizer((t["text"] for c in convs for t in c["turns"]), vocab_size=600, min_frequency=1)
    windows = conversation_windows(tok, convs, 1024, "all")
    assert len(windows) == len(convs)  # whole prompts, never cut
    assert all(any(lab != -100 for lab in labels) for _, labels in windows)
    torch.manual_seed(0)
    model = build_model(TrainConfig(data="", out="", hidden_size=32, layers=1, heads=2, intermediate_size=64, block_size=1024), tok)
    batch = collate(windows[:8], tok.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


def test_history_in_examples_starts_with_a_user_turn(pools, personas):
    generator = Generator(pools[0], personas, seed=11)
    for i in range(100):
        example = generator.example(LANGS[i % 2])
        assert example.history[0].role == "user" and example.history[-1].role == "user"
        assert all(isinstance(m, ChatMessage) for m in example.history)



def _earlier_answers(generator, example):
    """The assistant turns before the reply, less the opening small-talk exchange."""
    small_talk = {reply for _, reply in [*generator.chitchat, *ZH_CHITCHAT]}
    return [m.content for m in example.history[:-1] if m.role == "assistant" and m.content not in small_talk]


def test_follow_up_questions_are_answered_from_the_same_prompt(pools, personas):
    from training.grounded_lists import ABSTAIN

    train = pools[0]
    generator = Generator(train, personas, seed=7, followups=1.0)
    answered = 0
    for i in range(300):
        lang = LANGS[i % 2]
        example = generator.memory_example(lang)
        shown = "\n".join(s.text for s in example.sections)
        values = [v for slot_values in train.entities[lang].values() for v in slot_values]
        unknown = tuple({t.split("{")[0] for slot in ABSTAIN[lang].values() for t in slot})
        for answer in _earlier_answers(generator, example):
            used = [v for v in values if v.lower() in answer.lower()]  # "{V}": capitalised at the start
            assert all(v.lower() in shown.lower() for v in used) and (used or answer.startswith(unknown)), (answer, shown)
            answered += bool(used)
        passage = generator.passage_example(lang)
        flat = " ".join(" ".join(s.text.split()) for s in passage.sections)
        for answer in _earlier_answers(generator, passage):
            quoted = {answer[len(lead):len(answer) - len(tail)] for lead in ANSWER_LEADS[lang] for tail in ANSWER_TAILS[lang]
                      if answer.startswith(lead) and answer.endswith(tail)}
            assert any(len(q) > 4 and q in flat for q in quoted), (answer, flat)
    assert answered > 100


def test_without_follow_ups_the_history_is_at_most_one_small_talk_exchange(pools, personas):
    generator = Generator(pools[0], personas, seed=7)
    for i in range(200):
        example = generator.example(LANGS[i % 2])
        assert len(example.history) in (1, 3)
