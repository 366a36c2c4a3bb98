"""A batched reply's text, decoded as its tokens come, read as an async iterator.

transformers' ``AsyncTextIteratorStreamer`` decodes the whole reply again for every new
token and hands each piece over with ``call_soon_threadsafe`` (a write to the event
loop's wake-up pipe), although the batcher already runs on the loop. At 32 chats that
was a large share of the event loop's time per token, taken while the decode thread
waited for the GIL. Here each token costs one step of the tokenizer's own incremental
decoder (``tokenizers.decoders.DecodeStream``, which holds back the bytes of an
unfinished character) and one ``put_nowait``. Tokenizers without a Rust backend decode
only the tail of the reply, with a few tokens before it for context.
"""

from __future__ import annotations

import asyncio
from typing import Any

CONTEXT_TOKENS = 5  # tokens decoded before the unsent tail, so spaces and merges come out right


class TokenText:
    """Feed token ids with :meth:`put` and :meth:`end` on the event loop; iterate the text."""

    def __init__(self, tokenizer: Any) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._decoder = _StreamDecoder(tokenizer) if tokenizer.is_fast else _TailDecoder(tokenizer)

    def put(self, tokens: list[int]) -> None:
        text = "".join(self._decoder.step(token) for token in tokens)
        if text:
            self._queue.put_nowait(text)

    def end(self) -> None:
        self._queue.put_nowait(None)

    def __aiter__(self) -> "TokenText":
        return self

    async def __anext__(self) -> str:
        text = await self._queue.get()
        if text is None:
            self._queue.put_nowait(None)  # a second reader ends too
            raise StopAsyncIteration
        return text


class _StreamDecoder:
    def __init__(self, tokenizer: Any) -> None:
        from tokenizers.decoders import DecodeStream

        self._backend = tokenizer.backend_tokenizer
        self._stream = DecodeStream(skip_special_tokens=True)

    def step(self, token: int) -> str:
        return self._stream.step(self._backend, token) or ""


class _TailDecoder:
    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._sent = 0  # tokens whose text has gone out
        self._context = 0  # where the decoded window starts

    def step(self, token: int) -> str:
        self._ids.append(token)
        decode = self._tokenizer.decode
        before = decode(self._ids[self._context : self._sent], skip_special_tokens=True)
        text = decode(self._ids[self._context :], skip_special_tokens=True)
        if len(text) <= len(before) or text.endswith("\ufffd"):  # nothing new yet, or half a character
            return ""
        self._sent = len(self._ids)
        self._context = max(0, self._sent - CONTEXT_TOKENS)
        return text[len(before) :]
