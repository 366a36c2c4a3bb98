"""The byte-level BPE tokenizer and its chat template, loaded back through AutoTokenizer."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from training.tokenizer import CHAT_TEMPLATE, encode_conversation


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


@pytest.mark.parametrize("text", ["hello there, how are you?", "你好，今天天气怎么样？", "emoji 🐶🎉 and ünïcödé", "line one\nline two"])
def test_round_trip_any_script(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id is None or tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_special_tokens(tok):
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"
    for t in ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1
    assert tok.chat_template == CHAT_TEMPLATE


def test_chat_template_renders_project_format(tok):
    messages = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi there"}, {"role": "user", "content": "你好"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|system|>be kind<|end|><|user|>hello<|end|><|assistant|>hi there<|end|><|user|>你好<|end|><|assistant|>"
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert tok.decode(ids) == text


def test_chat_template_rejects_unknown_role(tok):
    with pytest.raises(Exception, match="role must be"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_placeholders_are_atomic_and_survive_skip_special(tok):
    ids = tok("mail <email> or <url>", add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<email>") in ids and tok.convert_tokens_to_ids("<url>") in ids
    assert tok.decode(ids, skip_special_tokens=True) == "mail <email> or <url>"


def test_encode_conversation_masks(tok):
    turns = [{"role": "user", "text": "hello"}, {"role": "assistant", "text": "hi there"}]
    ids, mask, starts = encode_conversation(tok, turns, loss_on="assistant")
    assert tok.decode(ids) == "<|user|>hello<|end|><|assistant|>hi there<|end|>"
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "hi there<|end|>"
    assert [tok.convert_ids_to_tokens(ids[s]) for s in starts] == ["<|user|>", "<|assistant|>"]
    _, mask_all, _ = encode_conversation(tok, turns, loss_on="all")
    assert tok.decode([i for i, m in zip(ids, mask_all) if m]) == "hello<|end|>hi there<|end|>"
