"""Images users send: checked at the edge, handed to the model for one turn.

Adapters fetch a photo or image attachment with a size limit (``[model] max_image_bytes``)
and call :func:`image_ref`: the bytes must really be an image (magic numbers, not the
file name, and they must decode whole with Pillow), and become a ``data:`` URL that lives in memory for the turn only. The store
keeps the turn's text (the caption, or :data:`IMAGE_TEXT` without one) and, through the
``media`` feature (core/media_feature.py), each image's platform reference with the user's data (in /export, gone
on /forget), never the bytes.
Models without ``[model] vision`` get the caption and the user one short notice.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Sequence

from core.events import ChatMessage, ImageRef

IMAGE_TEXT = "[image]"  # the stored text of an image sent without a caption
NOT_UNDERSTOOD = "(I can't see images, so I answered your words only.)"
TOO_LARGE = "(That image is too large for me, so I answered your words only.)"
NOT_AN_IMAGE = "(I couldn't read that file as an image, so I answered your words only.)"

_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class ImageRejected(ValueError):
    """Not taken; ``notice`` is what to tell the user."""

    def __init__(self, notice: str) -> None:
        super().__init__(notice)
        self.notice = notice


def sniff_image(data: bytes) -> str | None:
    """The image type by its first bytes (JPEG, PNG, GIF, WebP); None when it is no image."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decodes(data: bytes) -> bool:
    """Whether the bytes decode as a whole image (a truncated or corrupt file with a valid
    header does not), within Pillow's decompression-bomb limit."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


def image_ref(data: bytes, limit: int, ref: str = "") -> ImageRef:
    if len(data) > limit:
        raise ImageRejected(TOO_LARGE)
    mime = sniff_image(data)
    if mime is None or not decodes(data):
        raise ImageRejected(NOT_AN_IMAGE)
    return ImageRef(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", mime, len(data), ref)


def with_images(messages: Sequence[ChatMessage], images: Sequence[ImageRef]) -> tuple[ChatMessage, ...]:
    """The prompt with ``images`` on its last user turn (the message that brought them)."""
    out = list(messages)
    for index in range(len(out) - 1, -1, -1):
        if out[index].role == "user":
            out[index] = dataclasses.replace(out[index], images=tuple(images))
            break
    return tuple(out)

