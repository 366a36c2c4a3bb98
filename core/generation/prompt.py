"""Chat messages -> the exact token ids fed to a model, with no way to forge control tokens.

The tokenizer's chat template renders the conversation with a unique placeholder in place
of each message's text. The rendered string is split at the placeholders: the template's
own parts are tokenized normally (so its ``<|user|>``, ``<|end|>``… become control
tokens), while every message's text is tokenized with ``split_special_tokens=True``, so a
user typing ``<|end|>``, ``<|system|>`` or the model's eos text gets plain-text tokens.

Tokenizers without a template (GPT-2 style models) get a plain transcript::

    System: …
    User: hello
    Assistant:

whose replies are cut at ``"\\nUser:"`` (see :attr:`PromptRenderer.stop_strings`).

Tools: when the template takes ``tools`` (:attr:`PromptRenderer.supports_tools`), the
offered tools go to ``apply_chat_template(tools=...)`` in the template's own format;
assistant turns with tool calls and ``tool`` turns are rendered by the template too, and
a tool result is message text like any other (tokenized with special tokens split).
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from core.errors import GenerationError
from core.events import ChatMessage, ToolSpec

ROLES = ("system", "user", "assistant")
TOOL_ROLES = (*ROLES, "tool")  # templates that take tools also render tool results
_PLAIN_LABELS = {"system": "System:", "user": "User:", "assistant": "Assistant:", "tool": "Tool:"}


class PromptRenderer:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        template = getattr(tokenizer, "chat_template", None)
        self.supports_tools = self.has_template and isinstance(template, str) and "tools" in template
        self.stop_strings: tuple[str, ...] = () if self.has_template else ("\nUser:",)
        self._prefix = self._default_prefix(tokenizer)
        self._encode = functools.lru_cache(maxsize=64)(self._encode_uncached)

    @staticmethod
    def _default_prefix(tokenizer: Any) -> list[int]:
        """The BOS a tokenizer adds on its own (Llama-style), for the plain transcript."""
        bos = getattr(tokenizer, "bos_token_id", None)
        added = tokenizer("", add_special_tokens=True)["input_ids"]
        return [bos] if bos is not None and added[:1] == [bos] else []

    def encode(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> list[int]:
        """Token ids of the prompt that asks the model for the next assistant turn."""
        return list(self._encode(tuple(messages), tuple(tools) if self.supports_tools else ()))

    def count(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> int:
        return len(self._encode(tuple(messages), tuple(tools) if self.supports_tools else ()))

    def _encode_uncached(self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...] = ()) -> tuple[int, ...]:
        if not messages:
            raise GenerationError("cannot generate a reply to an empty conversation")
        roles = TOOL_ROLES if self.supports_tools else ROLES
        for message in messages:
            if message.role not in roles:
                raise GenerationError(f"unknown chat role {message.role!r}; expected one of {roles}")
        parts = self._template_parts(messages, tools) if self.has_template else self._plain_parts(messages)
        ids: list[int] = [] if self.has_template else list(self._prefix)
        for text, is_content in parts:
            if text:
                ids += self.tokenizer(text, add_special_tokens=False, split_special_tokens=is_content)["input_ids"]
        return tuple(ids)

    def _template_parts(self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...] = ()) -> list[tuple[str, bool]]:
        marks, split = placeholders(len(messages))
        convo = [chat_turn(m, mark) for m, mark in zip(messages, marks)]
        extra: dict[str, Any] = {"tools": [_tool(spec) for spec in tools]} if tools else {}
        try:
            rendered = self.tokenizer.apply_chat_template(convo, tokenize=False, add_generation_prompt=True, **extra)
        except Exception as exc:
            if messages[0].role != "system" or len(messages) < 2:
                raise GenerationError(f"the model's chat template rejected the conversation: {exc}") from exc
            # Some templates (Gemma, Mistral v1) refuse a system turn: fold it into the first turn.
            folded = ChatMessage(messages[1].role, f"{messages[0].content}\n\n{messages[1].content}")
            return self._template_parts((folded, *messages[2:]), tools)
        pieces = split(rendered)
        # re.split with one group alternates: template text, message index, template text, …
        return [(p, False) if i % 2 == 0 else (messages[int(p)].content, True) for i, p in enumerate(pieces)]

    def _plain_parts(self, messages: tuple[ChatMessage, ...]) -> list[tuple[str, bool]]:
        parts: list[tuple[str, bool]] = []
        for message in messages:
            # The space goes with the content, as GPT-2 style BPE attaches it to the word.
            parts += [(_PLAIN_LABELS[message.role], False), (" " + message.content, True), ("\n", False)]
        parts.append((_PLAIN_LABELS["assistant"], False))
        return parts


def placeholders(count: int) -> tuple[list[str], Callable[[str], list[str]]]:
    """Marks no user can type for ``count`` message texts, and the split of a rendered
    template at them (template text, message index, template text, …)."""
    nonce = secrets.token_hex(8)
    pattern = re.compile(f"pbph{nonce}x(\\d+)z")
    return [f"pbph{nonce}x{i}z" for i in range(count)], pattern.split


def chat_turn(message: ChatMessage, mark: str) -> dict[str, Any]:
    """A message as chat templates take it; its text is the placeholder ``mark``."""
    turn: dict[str, Any] = {"role": message.role, "content": mark}
    if message.tool_calls:
        turn["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": _arguments(call.arguments)}}
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        turn["tool_call_id"] = message.tool_call_id
    return turn


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": {"name": spec.name, "description": spec.description,
                                             "parameters": json.loads(spec.parameters)}}
