"""Tiny corpora, tokenizer and models for the training tests (built in temp folders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TEXTS = [
    "hello there, how are you today?",
    "i am fine thanks, and you?",
    "what do you like to do on weekends?",
    "i like hiking and reading books",
    "你好，今天天气怎么样？",
    "天气很好，我们去公园吧",
    "do you have any pets at home?",
    "yes, a cat and two dogs 🐶",
]


def conversation(i: int, n_turns: int = 4) -> dict:
    roles = ["user", "assistant"]
    return {
        "id": f"c{i}",
        "source": "test",
        "turns": [{"role": roles[k % 2], "text": f"{TEXTS[(i + k) % len(TEXTS)]} {i}"} for k in range(n_turns)],
    }


def write_split_dir(folder: Path, n: int = 30) -> Path:
    """A prepared-data folder with train/valid/test.jsonl of tiny conversations."""
    folder.mkdir(parents=True, exist_ok=True)
    convs = [conversation(i) for i in range(n)]
    parts = {"train": convs[: n - 8], "valid": convs[n - 8 : n - 4], "test": convs[n - 4 :]}
    for name, items in parts.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in items), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    from training.tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("tok")
    tok = train_tokenizer(TEXTS * 20, vocab_size=400, min_frequency=1)
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    return write_split_dir(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A tiny random Llama with the chat tokenizer, saved like a real model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    folder = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
