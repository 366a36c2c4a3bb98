"""LoRA fine-tuning of a tiny random model: assistant-only labels, an adapter that loads."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from bots.training_cli import register
from core.errors import ConfigError
from training.finetune import FinetuneConfig, assistant_masked, finetune
from tests.training.conftest import conversation


def test_labels_cover_assistant_turns_only(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    msgs = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there"}, {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "你好！"}]
    ids, labels = assistant_masked(tok, msgs, 512)
    assert tok.decode([t for t, lab in zip(ids, labels) if lab != -100]) == "hi there<|end|>你好！<|end|>"
    assert assistant_masked(tok, msgs[:2], 512) is None  # nothing to learn from


def _write(path, n=6, extra_lines=()):
    lines = [json.dumps(conversation(i)) for i in range(n)] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_finetune_saves_adapter_that_loads(tmp_path, tiny_llama_dir):
    torch.set_num_threads(1)
    data = _write(tmp_path / "chats.jsonl", extra_lines=["{broken"])
    out = tmp_path / "adapter"
    info = finetune(FinetuneConfig(base=str(tiny_llama_dir), data=str(data), out=str(out), max_steps=6, batch_size=2, lr=5e-3),
                    log=lambda _: None)
    assert info["malformed_lines"] == 1 and info["conversations"] == 6
    assert info["last_loss"] < info["first_loss"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    tuned = PeftModel.from_pretrained(base, str(out))
    ids = torch.tensor([[3, 5, 7, 9]])
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))(input_ids=ids).logits
        adapted = tuned(input_ids=ids).logits
    assert not torch.allclose(plain, adapted)  # the adapter changes the model


def test_finetune_errors_are_clear(tmp_path, tiny_llama_dir):
    only_users = tmp_path / "u.jsonl"
    only_users.write_text(json.dumps({"turns": [{"role": "user", "text": "hi"}]}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no conversation with an assistant turn"):
        finetune(FinetuneConfig(base=str(tiny_llama_dir), data=str(only_users), out=str(tmp_path / "o")), log=lambda _: None)
    with pytest.raises(ConfigError, match="cannot load base model"):
        finetune(FinetuneConfig(base=str(tmp_path / "nope"), data=str(only_users), out=str(tmp_path / "o")), log=lambda _: None)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["finetune", "--base", str(tiny_llama_dir), "--data", str(tmp_path / "missing.jsonl"),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "cannot read" in result.output and "Traceback" not in result.output
