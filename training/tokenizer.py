"""Byte-level BPE tokenizer with the project's chat format, saved in Hugging Face format.

Rendered chat: ``<|system|>…<|end|><|user|>hello<|end|><|assistant|>hi there<|end|>``.
``<|end|>`` closes every turn and is the eos token, so generation stops on it.
Byte-level BPE covers every script (no unknown tokens for Chinese or emoji).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

SYSTEM, USER, ASSISTANT, END, PAD = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, END, SYSTEM, USER, ASSISTANT]
PLACEHOLDER_TOKENS = ["<email>", "<phone>", "<url>", "<user>", "<number>"]  # from PII scrubbing

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('role must be system, user or assistant') }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE on ``texts``; returns a ``PreTrainedTokenizerFast`` with the template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(PLACEHOLDER_TOKENS),
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Placeholders are atomic but ordinary text: decoding with skip_special_tokens keeps them.
    tok.add_tokens([AddedToken(p, special=False, normalized=False) for p in PLACEHOLDER_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT],
        clean_up_tokenization_spaces=False,
        model_max_length=1_000_000,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def conversation_texts(convs: Iterable[dict[str, Any]]) -> Iterable[str]:
    for conv in convs:
        for turn in conv["turns"]:
            yield turn["text"]


def build_and_save(convs: list[dict[str, Any]], out_dir: str | Path, vocab_size: int = 8192) -> Any:
    tok = train_tokenizer(conversation_texts(convs), vocab_size=vocab_size)
    tok.save_pretrained(str(out_dir))
    return tok


def encode_conversation(tok: Any, turns: list[dict[str, str]], loss_on: str = "all") -> tuple[list[int], list[bool], list[int]]:
    """Token ids of a rendered conversation, the mask of tokens that count in the loss,
    and the index where each turn starts (its role token).

    Targets are a turn's text plus its ``<|end|>`` (so the model learns to stop); role
    tokens are given by the template and never targets. ``loss_on`` is ``"all"`` (every
    speaker) or ``"assistant"``.
    """
    role_ids = {r: tok.convert_tokens_to_ids(f"<|{r}|>") for r in ("system", "user", "assistant")}
    end_id = tok.convert_tokens_to_ids(END)
    ids: list[int] = []
    mask: list[bool] = []
    starts: list[int] = []
    for turn in turns:
        body = tok(turn["text"], add_special_tokens=False)["input_ids"]
        target = turn["role"] == "assistant" or (loss_on == "all" and turn["role"] == "user")
        starts.append(len(ids))
        ids.append(role_ids[turn["role"]])
        mask.append(False)
        ids.extend(body)
        ids.append(end_id)
        mask.extend([target] * (len(body) + 1))
    return ids, mask, starts
