"""LoRA fine-tuning (peft) of any Hugging Face causal LM on exported conversations.

Conversations are rendered with the base tokenizer's own chat template and the loss
is on assistant turns only (the persona's or community's replies). Only the adapter
is saved; load it with ``PeftModel.from_pretrained(base_model, out_dir)``.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from training.data import read_jsonl


@dataclass
class FinetuneConfig:
    base: str
    data: str
    out: str
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: str = "all-linear"  # or a comma-separated list of module names
    lr: float = 2e-4
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4
    max_length: int = 512
    seed: int = 0
    overwrite: bool = False


def assistant_masked(tok: Any, messages: list[dict[str, str]], max_length: int) -> tuple[list[int], list[int]] | None:
    """Token ids of the rendered chat and labels that keep only assistant tokens.

    Each assistant turn's span is found by rendering the prefix before it (with the
    generation prompt) and the prefix including it, which works for any chat template.
    """

    def render(msgs: list[dict[str, str]], gen: bool) -> list[int]:
        out = tok.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=True, return_dict=True)
        return list(out["input_ids"])

    ids = render(messages, False)
    labels = [-100] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(messages[:i], True)) if i else 0
        end = len(render(messages[: i + 1], False))
        labels[start:end] = ids[start:end]
    ids, labels = ids[:max_length], labels[:max_length]
    return (ids, labels) if any(lab != -100 for lab in labels) else None


def finetune(cfg: FinetuneConfig, log=print) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    from core.generation.lstm import register_custom_models
    from training.train import collate

    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise ConfigError(f"output folder {out} exists and is not empty (use --overwrite)")
    records, bad = read_jsonl(cfg.data)
    if bad:
        log(f"skipped {bad} malformed or empty line(s) in {cfg.data}")
    register_custom_models()
    torch.set_num_threads(os.cpu_count() or 1)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    try:
        tok = AutoTokenizer.from_pretrained(cfg.base)
        model = AutoModelForCausalLM.from_pretrained(cfg.base, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load base model {cfg.base}: {exc}") from exc
    if not tok.chat_template:
        raise ConfigError(f"the tokenizer of {cfg.base} has no chat template")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    examples = []
    for rec in records:
        msgs = [{"role": t["role"], "content": t["text"]} for t in rec["turns"]]
        ex = assistant_masked(tok, msgs, cfg.max_length)
        if ex is not None:
            examples.append(ex)
    if not examples:
        raise ConfigError(f"{cfg.data}: no conversation with an assistant turn")
    targets = cfg.target_modules if cfg.target_modules == "all-linear" else [m.strip() for m in cfg.target_modules.split(",") if m.strip()]
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets, task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"LoRA target modules not found in {cfg.base}: {exc}") from exc
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(total // 10, 100), total)
    losses = []
    for step in tqdm(range(total), desc="lora", mininterval=2):
        if step % steps_per_epoch == 0:
            random.shuffle(examples)
        k = step % steps_per_epoch
        batch = {n: v.to(device) for n, v in collate(examples[k * cfg.batch_size : (k + 1) * cfg.batch_size], tok.pad_token_id).items()}
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    info = {"base": cfg.base, "conversations": len(examples), "malformed_lines": bad, "steps": total,
            "first_loss": losses[0], "last_loss": losses[-1],
            "trainable_parameters": sum(p.numel() for p in params)}
    (out / "finetune_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
