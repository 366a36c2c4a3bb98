"""From-scratch training of the dialogue models (Llama-style Transformer or attention-LSTM).

AdamW, linear warmup + cosine decay, gradient clipping,
periodic checkpoints with exact ``resume``, early stopping on validation loss and a
wall-clock budget. The best model by validation loss is saved in Hugging Face format
(safetensors + tokenizer + generation_config with eos = ``<|end|>``) in ``out``.

Loss: by default on every speaker's turns (``loss_on="all"``): in chitchat both
speakers are people, so either side is a good reply model and this doubles the
supervision of a small corpus. ``loss_on="assistant"`` trains on bot turns only.
Role tokens are never targets; each turn's ``<|end|>`` is, so the model learns to stop.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from training.data import load_split
from training.tokenizer import END, PAD

ARCHS = ("transformer", "lstm")


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "transformer"
    tokenizer: str | None = None  # folder of a saved tokenizer; trained on the train split when None
    init_from: str | None = None  # a trained model folder to start from (its shape and tokenizer), e.g. on new data
    vocab_size: int = 8192
    block_size: int = 256  # longest training window, in tokens
    context_size: int | None = None  # model's context (max_position_embeddings); None = block_size
    hidden_size: int = 256
    layers: int = 6
    heads: int = 4
    intermediate_size: int = 704
    dropout: float = 0.1  # LSTM only
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 200
    max_steps: int = 4000
    clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 40
    checkpoint_every: int = 250
    patience: int = 4  # evaluations without improvement before stopping
    max_minutes: float | None = None
    seed: int = 0
    loss_on: str = "all"
    threads: int | None = None  # torch CPU threads; None = every core

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.loss_on not in ("all", "assistant"):
            raise ConfigError("loss_on must be 'all' or 'assistant'")
        for name in ("block_size", "hidden_size", "layers", "batch_size", "max_steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive")
        if self.context_size is not None and self.context_size < self.block_size:
            raise ConfigError("context_size must be at least block_size")
        if self.arch == "transformer" and self.hidden_size % self.heads:
            raise ConfigError("hidden_size must be divisible by heads")


# --- data ------------------------------------------------------------------------
def conversation_windows(tok: Any, convs: list[dict[str, Any]], block_size: int, loss_on: str) -> list[tuple[list[int], list[int]]]:
    """Cut each conversation at turn boundaries into windows of at most ``block_size`` tokens.

    Returns ``(input_ids, labels)`` pairs; labels are -100 where the loss is off. A
    conversation's own ``loss_on`` overrides the run's. Grounded conversations are
    whole prompts: one longer than ``block_size`` is left out rather than cut, since a
    reply without the memories or passages it quotes would teach invention.
    """
    from training.tokenizer import encode_conversation

    out = []
    for conv in convs:
        ids, mask, starts = encode_conversation(tok, conv["turns"], conv.get("loss_on", loss_on))
        if conv.get("source") == "grounded":
            if len(ids) <= block_size:
                out.append((ids, [t if m else -100 for t, m in zip(ids, mask)]))
            continue
        bounds = starts + [len(ids)]
        a = 0
        while a < len(starts):
            b = a + 1
            while b < len(starts) and bounds[b + 1] - bounds[a] <= block_size:
                b += 1
            lo, hi = bounds[a], min(bounds[b], bounds[a] + block_size)
            labels = [t if m else -100 for t, m in zip(ids[lo:hi], mask[lo:hi])]
            if any(lab != -100 for lab in labels[1:]):
                out.append((ids[lo:hi], labels))
            a = b
    return out


def epoch_batches(windows: list[tuple[list[int], list[int]]], batch_size: int, seed: int) -> list[list[int]]:
    """One epoch's batches: shuffled, then windows of similar length batched together
    (within chunks of 32 batches), so little compute goes to padding; the batch order
    is shuffled again. Deterministic in ``seed``, so ``resume`` continues exactly."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(windows), generator=generator).tolist()
    chunk = batch_size * 32
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(windows[i][0]))
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    n = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    attn = torch.zeros((len(batch), n), dtype=torch.long)
    for i, (ids, lab) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        attn[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attn}


# --- models ----------------------------------------------------------------------
def build_model(cfg: TrainConfig, tok: Any) -> Any:
    end_id, pad_id = tok.convert_tokens_to_ids(END), tok.convert_tokens_to_ids(PAD)
    if cfg.arch == "transformer":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            num_key_value_heads=cfg.heads,
            max_position_embeddings=cfg.context_size or cfg.block_size,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=end_id,
            pad_token_id=pad_id,
        )
        return LlamaForCausalLM(config)
    from core.generation.lstm import AttentionLSTMConfig, AttentionLSTMForCausalLM

    config = AttentionLSTMConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        num_layers=cfg.layers,
        dropout=cfg.dropout,
        max_position_embeddings=cfg.context_size or cfg.block_size,
        eos_token_id=end_id,
        pad_token_id=pad_id,
    )
    return AttentionLSTMForCausalLM(config)


def generation_config(tok: Any, arch: str) -> Any:
    from transformers import GenerationConfig

    return GenerationConfig(
        eos_token_id=tok.convert_tokens_to_ids(END),
        pad_token_id=tok.convert_tokens_to_ids(PAD),
        do_sample=True,
        temperature=0.8,
        top_p=0.9,
        top_k=50,
        repetition_penalty=1.1,
        max_new_tokens=64,
        use_cache=arch != "lstm",
    )


def save_model(model: Any, tok: Any, out: Path, arch: str, extra: dict[str, Any] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = generation_config(tok, arch)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    if extra is not None:
        (out / "training_info.json").write_text(json.dumps(extra, indent=2) + "\n", encoding="utf-8")


def _set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(cfg: TrainConfig, step: int, minutes: float) -> float:
    """Linear warmup, then cosine decay to zero over whichever budget runs out first:
    ``max_steps`` or ``max_minutes``. On a shared CPU the step rate is unpredictable, so
    a time budget still ends with an annealed model instead of a cut-off one."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    if cfg.max_minutes:
        progress = max(progress, minutes / cfg.max_minutes)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainResult:
    out: str
    steps: int
    best_val_loss: float
    parameters: int
    tokens_seen: int
    minutes: float
    stopped: str  # "max_steps" | "early_stop" | "time_budget"


def evaluate_loss(model: Any, windows: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, max_batches: int, device: Any) -> float:
    """Mean next-token loss over target tokens (token-weighted)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for k in range(0, min(len(windows), max_batches * batch_size), batch_size):
            batch = {k2: v.to(device) for k2, v in collate(windows[k : k + batch_size], pad_id).items()}
            labels = batch.pop("labels")
            logits = model(**batch).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100, reduction="sum")
            total += loss.item()
            count += int((target != -100).sum())
    model.train()
    return total / max(count, 1)


def _shape_of(cfg: TrainConfig, config: Any) -> TrainConfig:
    """``cfg`` with the size fields of a loaded model's config (a Llama or the attention-LSTM)."""
    if config.model_type != "llama":
        return dataclasses.replace(cfg, arch="lstm")
    return dataclasses.replace(
        cfg, arch="transformer", hidden_size=config.hidden_size, layers=config.num_hidden_layers,
        heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        context_size=config.max_position_embeddings, vocab_size=config.vocab_size,
    )


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.data``; the best model by validation loss ends up in ``cfg.out``."""
    cfg.validate()
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer

    from training.tokenizer import build_and_save

    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    out = Path(cfg.out)
    ckpt = out / "checkpoint"
    if resume:
        if not (ckpt / "trainer_state.pt").is_file():
            raise ConfigError(f"nothing to resume in {ckpt}")
        saved = json.loads((ckpt / "train_config.json").read_text(encoding="utf-8"))
        keep = {"max_steps", "max_minutes", "patience", "eval_every", "checkpoint_every", "threads"}  # may change on resume
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        cfg = dataclasses.replace(cfg, **{k: v for k, v in saved.items() if k in known and k not in keep})
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"output folder {out} exists and is not empty (use --resume to continue)")
    _set_seed(cfg.seed)

    train_convs = load_split(cfg.data, "train")
    valid_convs = load_split(cfg.data, "valid")
    if not train_convs or not valid_convs:
        raise ConfigError(f"{cfg.data}: empty train or valid split")
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        tok = AutoTokenizer.from_pretrained(str(ckpt))
    elif cfg.init_from:
        tok = AutoTokenizer.from_pretrained(cfg.init_from)
    elif cfg.tokenizer:
        tok = AutoTokenizer.from_pretrained(cfg.tokenizer)
    else:
        log(f"training a {cfg.vocab_size}-token byte-level BPE on {len(train_convs)} conversations")
        tok = build_and_save(train_convs, out / "tokenizer", cfg.vocab_size)
    pad_id = tok.convert_tokens_to_ids(PAD)
    train_w = conversation_windows(tok, train_convs, cfg.block_size, cfg.loss_on)
    valid_w = conversation_windows(tok, valid_convs, cfg.block_size, cfg.loss_on)
    random.Random(cfg.seed).shuffle(valid_w)
    if not train_w:
        raise ConfigError("no training windows (all conversations empty?)")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if resume or cfg.init_from:
        from transformers import AutoModelForCausalLM

        from core.generation.lstm import register_custom_models

        register_custom_models()
        model = AutoModelForCausalLM.from_pretrained(str(ckpt) if resume else cfg.init_from, dtype=torch.float32)
        if cfg.init_from and not resume:
            cfg = _shape_of(cfg, model.config)  # what is saved with the model says what it is
    else:
        model = build_model(cfg, tok)
    model.to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    state = {"step": 0, "best_val": math.inf, "bad_evals": 0, "tokens": 0, "minutes": 0.0}
    if resume:
        saved_state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(saved_state["optimizer"])
        state = saved_state["state"]
        torch.set_rng_state(saved_state["torch_rng"])
        random.setstate(saved_state["py_rng"])
    log(f"{cfg.arch}: {n_params / 1e6:.2f}M parameters, {len(train_w)} train windows, "
        f"{len(valid_w)} valid windows, device {device}, step {state['step']}/{cfg.max_steps}")

    def save_checkpoint() -> None:
        tmp = out / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2), encoding="utf-8")
        torch.save({"optimizer": optimizer.state_dict(), "state": state,
                    "torch_rng": torch.get_rng_state(), "py_rng": random.getstate()}, tmp / "trainer_state.pt")
        shutil.rmtree(ckpt, ignore_errors=True)
        tmp.rename(ckpt)  # atomic swap: a crash never leaves a half-written checkpoint

    steps_per_epoch = math.ceil(len(train_w) / cfg.batch_size)
    started = time.monotonic() - state["minutes"] * 60
    stopped = "max_steps"
    bar = tqdm(total=cfg.max_steps, initial=state["step"], disable=not progress, dynamic_ncols=True, mininterval=5)
    window_tokens, window_start, ema = 0, time.monotonic(), None
    batches, batches_epoch = [], -1
    while state["step"] < cfg.max_steps:
        step = state["step"]
        epoch, index = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
            batches, batches_epoch = epoch_batches(train_w, cfg.batch_size, cfg.seed * 1000 + epoch), epoch
        idx = batches[index]
        batch = {k: v.to(device) for k, v in collate([train_w[i] for i in idx], pad_id).items()}
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(cfg, state["step"], state["minutes"])
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        scaler.step(optimizer)
        scaler.update()
        n_tok = int(batch["attention_mask"].sum())
        state["step"] += 1
        state["tokens"] += n_tok
        window_tokens += n_tok
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        elapsed = time.monotonic() - window_start
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{window_tokens / max(elapsed, 1e-9):.0f}", refresh=False)
        state["minutes"] = (time.monotonic() - started) / 60
        over_time = cfg.max_minutes is not None and state["minutes"] >= cfg.max_minutes
        last = state["step"] >= cfg.max_steps or over_time
        if state["step"] % cfg.eval_every == 0 or last:
            val = evaluate_loss(model, valid_w, cfg.batch_size, pad_id, cfg.eval_batches, device)
            improved = val < state["best_val"]
            if improved:
                state["best_val"], state["bad_evals"] = val, 0
                save_model(model, tok, out, cfg.arch, {"config": dataclasses.asdict(cfg), "step": state["step"], "val_loss": val, "parameters": n_params})
            else:
                state["bad_evals"] += 1
            log(f"step {state['step']} epoch {epoch} train_loss {ema:.4f} val_loss {val:.4f} (ppl {math.exp(val):.1f})"
                f"{' *' if improved else ''} tok/s {window_tokens / max(elapsed, 1e-9):.0f} minutes {state['minutes']:.1f}")
            window_tokens, window_start = 0, time.monotonic()
            if state["bad_evals"] >= cfg.patience:
                stopped = "early_stop"
                last = True
        if state["step"] % cfg.checkpoint_every == 0 or last:
            save_checkpoint()
        if over_time and stopped == "max_steps":
            stopped = "time_budget"
        if last:
            break
    bar.close()
    log(f"done ({stopped}) after {state['step']} steps, best val loss {state['best_val']:.4f}")
    return TrainResult(str(out), state["step"], state["best_val"], n_params, state["tokens"], state["minutes"], stopped)
