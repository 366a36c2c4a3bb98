"""Both models learn, the LSTM loads and generates through the Auto classes, resume is exact."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from bots.training_cli import register
from core.errors import ConfigError
from core.generation.lstm import AttentionLSTMForCausalLM, register_custom_models
from training.train import TrainConfig, build_model, collate, conversation_windows, train
from tests.training.conftest import conversation

TINY = dict(hidden_size=32, layers=2, heads=2, intermediate_size=64, block_size=64, batch_size=4, eval_batches=2)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # other jobs share this machine


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_a_few_steps_lower_the_loss(tok, arch):
    torch.manual_seed(0)
    cfg = TrainConfig(data="-", out="-", arch=arch, dropout=0.0, **TINY)
    model = build_model(cfg, tok)
    batch = collate(conversation_windows(tok, [conversation(i) for i in range(4)], 64, "all"), tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


def test_windows_start_at_turn_boundaries_and_fit(tok):
    convs = [conversation(i, n_turns=12) for i in range(3)]
    windows = conversation_windows(tok, convs, 40, "assistant")
    starts = {tok.convert_tokens_to_ids("<|user|>"), tok.convert_tokens_to_ids("<|assistant|>")}
    assert windows and all(len(ids) <= 40 and ids[0] in starts for ids, _ in windows)
    for ids, labels in windows:  # assistant mode: no label inside a user turn
        role = None
        for t, lab in zip(ids, labels):
            if t in starts:
                role = t
            if lab != -100:
                assert role == tok.convert_tokens_to_ids("<|assistant|>")


def test_lstm_attention_is_causal(tok):
    torch.manual_seed(0)
    model = build_model(TrainConfig(data="-", out="-", arch="lstm", dropout=0.0, **TINY), tok).eval()
    a = torch.tensor([[5, 6, 7, 8, 9, 10]])
    b = a.clone()
    b[0, 4:] = 11
    with torch.no_grad():
        la, lb = model(input_ids=a).logits, model(input_ids=b).logits
    assert torch.allclose(la[0, :4], lb[0, :4])
    assert not torch.allclose(la[0, 4:], lb[0, 4:])


def test_lstm_loads_with_auto_classes_and_generates(tmp_path, tok):
    register_custom_models()
    register_custom_models()  # idempotent
    model = build_model(TrainConfig(data="-", out="-", arch="lstm", **TINY), tok)
    model.save_pretrained(str(tmp_path))
    assert AutoConfig.from_pretrained(str(tmp_path)).model_type == "personabot-lstm"
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert isinstance(loaded, AttentionLSTMForCausalLM)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    prompt = tok.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    out = loaded.generate(**prompt, max_new_tokens=5, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def _cfg(data, out, tok_dir, **kw):
    base = dict(TINY, eval_every=2, checkpoint_every=2, warmup_steps=1, max_steps=4, seed=3)
    base.update(kw)
    return TrainConfig(data=str(data), out=str(out), tokenizer=str(tok_dir), **base)


def test_train_saves_hf_model_and_resume_is_exact(tmp_path, tiny_data_dir, tiny_tokenizer_dir):
    straight = train(_cfg(tiny_data_dir, tmp_path / "a", tiny_tokenizer_dir), progress=False, log=lambda _: None)
    assert straight.steps == 4 and straight.stopped == "max_steps"
    # interrupted after one step by the time budget, then resumed to the same end
    first = train(_cfg(tiny_data_dir, tmp_path / "b", tiny_tokenizer_dir, max_minutes=0.0), progress=False, log=lambda _: None)
    assert first.steps == 1 and first.stopped == "time_budget"
    resumed = train(_cfg(tiny_data_dir, tmp_path / "b", tiny_tokenizer_dir, max_minutes=None), resume=True, progress=False,
                    log=lambda _: None)
    assert resumed.steps == 4
    wa = load_file(str(tmp_path / "a" / "checkpoint" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoint" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    # the best model is a complete Hugging Face folder with eos = <|end|>
    out = tmp_path / "a"
    gen = json.loads((out / "generation_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(out))
    assert gen["eos_token_id"] == tok.convert_tokens_to_ids("<|end|>")
    assert AutoModelForCausalLM.from_pretrained(str(out)).config.model_type == "llama"


def test_init_from_starts_from_the_trained_weights_on_new_data(tmp_path, tiny_data_dir, tiny_tokenizer_dir):
    base = train(_cfg(tiny_data_dir, tmp_path / "base", tiny_tokenizer_dir, max_steps=6), progress=False, log=lambda _: None)
    logged = []
    # the size options say otherwise: the model's own shape wins; max_minutes=0 stops after one step
    cont = train(TrainConfig(data=str(tiny_data_dir), out=str(tmp_path / "next"), init_from=base.out, hidden_size=64,
                             block_size=64, batch_size=4, eval_batches=2, eval_every=1, warmup_steps=1, max_steps=1,
                             lr=1e-9, seed=3), progress=False, log=logged.append)
    assert cont.steps == 1 and cont.parameters == base.parameters
    # with a vanishing learning rate the first validation is the base model's own: it started from its weights
    assert cont.best_val_loss == pytest.approx(base.best_val_loss, rel=0.02)
    info = json.loads((tmp_path / "next" / "training_info.json").read_text())
    assert info["config"]["init_from"] == base.out and info["config"]["hidden_size"] == TINY["hidden_size"]
    fresh = train(_cfg(tiny_data_dir, tmp_path / "fresh", tiny_tokenizer_dir, max_steps=1), progress=False, log=lambda _: None)
    assert fresh.best_val_loss > cont.best_val_loss


def test_train_refuses_to_clobber_and_to_resume_nothing(tmp_path, tiny_data_dir, tiny_tokenizer_dir):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("keep")
    with pytest.raises(ConfigError, match="not empty"):
        train(_cfg(tiny_data_dir, tmp_path / "x", tiny_tokenizer_dir), progress=False)
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_cfg(tiny_data_dir, tmp_path / "y", tiny_tokenizer_dir), resume=True, progress=False)
    with pytest.raises(ConfigError, match="arch"):
        train(_cfg(tiny_data_dir, tmp_path / "z", tiny_tokenizer_dir, arch="rnn"), progress=False)


def test_cli_train_lstm_trains_its_own_tokenizer(tmp_path, tiny_data_dir):
    app = typer.Typer()
    register(app)
    out = tmp_path / "m"
    result = CliRunner().invoke(app, ["train", "--data", str(tiny_data_dir), "--out", str(out), "--arch", "lstm",
                                      "--vocab-size", "300", "--hidden-size", "32", "--layers", "1", "--max-steps", "2",
                                      "--eval-every", "2", "--batch-size", "4", "--block-size", "64"])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    bad = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "data prepare" in bad.output and "Traceback" not in bad.output
