"""The optional classifier: a real Hugging Face text-classification folder, built tiny here.

Its head is set so that every text scores "toxic" 0.731 (logits 0 and 1): the loading,
truncation and threshold code runs for real, with a known answer.
"""

import pytest

from core.errors import ConfigError
from core.events import ChatKind
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.safety.conftest import safe_app

TOXIC_SCORE = 0.7310585975646973  # softmax([0, 1])[1]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder = tmp_path_factory.mktemp("toxicity")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "你", "好"]))
    tokenizer = BertTokenizer(vocab_file=str(folder / "vocab.txt"))  # no model_max_length: we must cut ourselves
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        max_position_embeddings=32, id2label={0: "ok", 1: "toxic"}, label2id={"ok": 0, "toxic": 1},
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 1.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def classifier(folder, threshold, **policy):
    return {"moderation": {"classifier": {"path": str(folder), "labels": ["toxic"], "threshold": threshold}, **policy}}


async def test_a_flagged_text_is_refused_even_where_the_policy_says_redact(classifier_dir):
    safety = classifier(classifier_dir, 0.7, private={"input": "redact", "output": "log"})
    async with safe_app(safety=safety) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("hello 你好 " * 500), outbox)  # longer than the model reads
        assert outbox.texts == ["I can't respond to that message."]
        counts = app.seams.reply_filters[-1].moderator.counts
        assert counts == {"input.private.refuse": 1}


async def test_the_final_reply_is_classified_too(classifier_dir):
    safety = classifier(classifier_dir, 0.7, group={"input": "log", "output": "refuse"})
    async with safe_app(safety=safety) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("hello", chat="-3", kind=ChatKind.GROUP), outbox)
        assert outbox.texts == ["I'd rather not say that. Let's talk about something else."]


async def test_below_the_threshold_nothing_is_flagged(classifier_dir):
    assert 0.7 < TOXIC_SCORE < 0.8
    async with safe_app(safety=classifier(classifier_dir, 0.8, private={"input": "refuse"})) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("hello"), outbox)
        assert outbox.texts == ["Hello there, friend!"]


async def test_a_context_can_skip_the_classifier(classifier_dir):
    safety = classifier(classifier_dir, 0.5, private={"input": "refuse", "classifier": False})
    async with safe_app(safety=safety) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("hello"), outbox)
        assert outbox.texts == ["Hello there, friend!"]


async def test_bad_classifier_settings_are_config_errors(classifier_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"labels: \['spam'\] not among the model's labels \['ok', 'toxic'\]"):
        async with safe_app(safety={"moderation": {"classifier": {"path": str(classifier_dir), "labels": ["spam"]}}}):
            pass
    with pytest.raises(ConfigError, match="model folder not found"):
        async with safe_app(safety=classifier(tmp_path / "missing", 0.5)):
            pass
