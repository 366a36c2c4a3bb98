"""Images for vision-language models on the transformers backend (docs/tools.md, "Images").

A model folder whose config has a ``vision_config`` (LLaVA, Qwen2-VL, Idefics, Gemma 3 …)
is loaded with ``AutoModelForImageTextToText`` and its ``AutoProcessor``. A turn that
carries images is rendered by the processor's chat template with image content parts;
as in core/generation/prompt.py the messages' text goes in as placeholders, so the
template's own pieces (and the image tokens the processor expands in them) are tokenized
as control tokens while what users and tools wrote is tokenized with special tokens
split: a user typing ``<image>`` or ``<|im_end|>`` gets plain text. Turns without images
take the ordinary text path. Text-only models never get here: ``[model] vision = true``
on one is a config error (:func:`check_vision_model`), and their users get the notice.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError, GenerationError
from core.events import ChatMessage, ToolSpec
from core.generation.prompt import _tool, chat_turn, placeholders
from core.i18n import _

UNREADABLE = _("I could not read that image.")


def is_vision_config(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def model_class(config: Any) -> Any:
    """The auto class that loads this model: image-text-to-text for VLMs, else causal LM."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if is_vision_config(config) else AutoModelForCausalLM


def load_processor(source: str, config: Any, trust_remote_code: bool) -> Any:
    """The processor of a VLM (None for a text-only model)."""
    if not is_vision_config(config):
        return None
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise GenerationError(f"cannot load the image processor of {source}: {type(exc).__name__}: {exc}") from exc
    if not getattr(processor, "chat_template", None) or not getattr(processor, "image_token", None):
        raise GenerationError(f"{source}: the processor has no chat template or no image token; it cannot take images")
    return processor


def check_vision_model(path: str, where: str) -> None:
    """``[model] vision = true`` on a local transformers folder that is not a VLM: a config
    error naming the field, found from config.json before any weights load."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        return  # a hub id: checked when it loads
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(folder))
    except Exception:
        return  # the load reports it
    if not is_vision_config(config):
        raise ConfigError(f"{where}: model.vision: {path} is a text-only model (no vision_config); set vision = false")


def decode_image(url: str) -> Any:
    """A PIL image from the ``data:`` URL the adapter made (core/media.py)."""
    from PIL import Image

    match = re.match(r"^data:image/[\w.+-]+;base64,(.*)$", url, re.DOTALL)
    if match is None:
        raise GenerationError("image is not held in memory (only data: URLs reach a local model)", user_message=UNREADABLE)
    try:
        image = Image.open(io.BytesIO(base64.b64decode(match.group(1), validate=True)))
        image.load()
        return image.convert("RGB")
    except (OSError, ValueError, binascii.Error, Image.DecompressionBombError) as exc:
        raise GenerationError(f"image does not decode: {exc}", user_message=UNREADABLE) from exc


class VisionPrompt:
    """Messages with images -> token ids and the processor's image tensors."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token: str = processor.image_token

    def encode(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> tuple[list[int], dict[str, Any]]:
        marks, split = placeholders(len(messages))
        convo = [_turn(message, mark) for message, mark in zip(messages, marks)]
        extra: dict[str, Any] = {"tools": [_tool(spec) for spec in tools]} if tools else {}
        try:
            rendered = self.processor.apply_chat_template(convo, tokenize=False, add_generation_prompt=True, **extra)
        except Exception as exc:
            raise GenerationError(f"the model's chat template rejected the conversation: {exc}") from exc
        images = [decode_image(image.url) for message in messages for image in message.images]
        pieces = split(rendered)
        ids: list[int] = []
        parts: list[tuple[int, dict[str, Any]]] = []  # (start, the processor's output) of each piece with images
        for index, piece in enumerate(pieces):
            if index % 2:  # a message's text: plain, special tokens split
                ids += self.tokenizer(messages[int(piece)].content, add_special_tokens=False,
                                      split_special_tokens=True)["input_ids"]
                continue
            wanted = piece.count(self.image_token)
            if not wanted:
                ids += self.tokenizer(piece, add_special_tokens=False)["input_ids"] if piece else []
                continue
            taken, images = images[:wanted], images[wanted:]
            out = self.processor(text=[piece], images=taken, add_special_tokens=False, return_tensors="pt")
            parts.append((len(ids), dict(out)))
            ids += out["input_ids"][0].tolist()
        if images:
            raise GenerationError(f"the chat template placed fewer image tokens than the {len(images)} image(s) sent")
        return ids, _tensors(parts, len(ids))


def _turn(message: ChatMessage, mark: str) -> dict[str, Any]:
    """A message as VLM templates take it: image parts first, then the text placeholder."""
    turn = chat_turn(message, mark)
    if message.images:
        turn["content"] = [{"type": "image"} for _ in message.images] + [{"type": "text", "text": mark}]
    return turn


def _tensors(parts: list[tuple[int, dict[str, Any]]], length: int) -> dict[str, Any]:
    """The processor's tensors for the whole prompt: per-image ones (pixel values, grids)
    joined in order, per-token ones (e.g. token type ids) laid at their pieces' places."""
    import torch

    joined: dict[str, Any] = {}
    for name in {name for _, out in parts for name in out} - {"input_ids", "attention_mask"}:
        values = [(start, out[name], out["input_ids"].shape[1]) for start, out in parts if name in out]
        if all(value.dim() >= 2 and value.shape[:2] == (1, size) for _, value, size in values):
            full = torch.zeros((1, length, *values[0][1].shape[2:]), dtype=values[0][1].dtype)
            for start, value, size in values:
                full[:, start : start + size] = value
            joined[name] = full
        else:
            joined[name] = torch.cat([value for _, value, _ in values], dim=0)
    return joined


def on_device(tensors: dict[str, Any], model: Any) -> dict[str, Any]:
    """The image tensors on the model's device, floating ones in its dtype."""
    return {name: value.to(model.device, dtype=model.dtype) if value.is_floating_point() else value.to(model.device)
            for name, value in tensors.items()}
