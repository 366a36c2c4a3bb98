"""A batched reply's text decoded token by token equals decoding the whole reply, for
Chinese and emoji split across byte-level tokens, with the tokenizer's own incremental
decoder and with the tail decoder used for tokenizers without one."""

from __future__ import annotations

import asyncio

import pytest

from core.generation.token_text import TokenText

TEXT = "Hello 你好世界, my dog is called Rex! 🐶 再见。"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from core.bootstrap import DEFAULT_MODEL_DIR

    return AutoTokenizer.from_pretrained(str(DEFAULT_MODEL_DIR))


class WithoutBackend:
    """The same tokenizer seen as one without a Rust backend."""

    is_fast = False

    def __init__(self, tokenizer) -> None:
        self.decode = tokenizer.decode


async def pieces_of(tokenizer, ids):
    text = TokenText(tokenizer)
    for token in ids:
        text.put([token])
    text.end()
    return [piece async for piece in text]


@pytest.mark.parametrize("backend", [True, False])
def test_pieces_join_to_the_whole_decoded_reply_and_never_hold_half_a_character(tokenizer, backend):
    ids = tokenizer.encode(TEXT, add_special_tokens=False) + [tokenizer.eos_token_id]
    pieces = asyncio.run(pieces_of(tokenizer if backend else WithoutBackend(tokenizer), ids))
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True) == TEXT
    assert all("\ufffd" not in piece for piece in pieces)
    assert len(pieces) > 5  # streamed, not held back to the end
