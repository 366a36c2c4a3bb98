"""A photo or image document fetched through the Bot API, with the bot's size limit.

The announced size is checked before downloading and the bytes after; they must be an
image by their first bytes and decode whole (core/media.py, off the event loop).
Telegram file URLs contain the bot token, so the image travels on as a ``data:`` URL,
never as its Telegram URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from telegram import Bot, Message
from telegram.error import TelegramError

from adapters.telegram.convert import image_attachment
from core.events import IncomingMessage
from core.media import NOT_AN_IMAGE, TOO_LARGE, ImageRejected, image_ref

log = logging.getLogger(__name__)


async def with_image(bot: Bot, message: Message, event: IncomingMessage, limit: int) -> IncomingMessage:
    attachment = image_attachment(message)
    if attachment is None:
        return event
    file_id, announced = attachment
    if announced is not None and announced > limit:
        return dataclasses.replace(event, media_notice=TOO_LARGE)
    try:
        file = await bot.get_file(file_id)
        if file.file_size is not None and file.file_size > limit:
            return dataclasses.replace(event, media_notice=TOO_LARGE)
        data = bytes(await file.download_as_bytearray())
        image = await asyncio.to_thread(image_ref, data, limit, f"telegram:file:{file_id}")
        return dataclasses.replace(event, images=(image,))
    except ImageRejected as rejected:
        return dataclasses.replace(event, media_notice=rejected.notice)
    except TelegramError as error:
        log.info("could not fetch the image of %s: %s", event.event_id, error)
        return dataclasses.replace(event, media_notice=NOT_AN_IMAGE)
