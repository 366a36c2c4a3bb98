"""An image attachment fetched from Discord's CDN, with the bot's size limit.

The announced size is checked before fetching and the bytes after; they must be an image
by their first bytes and decode whole (core/media.py, off the event loop), and travel on
as a ``data:`` URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import discord

from adapters.discord.convert import image_attachment
from core.events import IncomingMessage
from core.media import NOT_AN_IMAGE, TOO_LARGE, ImageRejected, image_ref

log = logging.getLogger(__name__)


async def with_image(message: discord.Message, event: IncomingMessage, limit: int) -> IncomingMessage:
    attachment = image_attachment(message)
    if attachment is None:
        return event
    if attachment.size > limit:
        return dataclasses.replace(event, media_notice=TOO_LARGE)
    try:
        data = await attachment.read()
        image = await asyncio.to_thread(image_ref, data, limit, f"discord:attachment:{attachment.id}")
        return dataclasses.replace(event, images=(image,))
    except ImageRejected as rejected:
        return dataclasses.replace(event, media_notice=rejected.notice)
    except (discord.HTTPException, discord.NotFound) as error:
        log.info("could not fetch the image of %s: %s", event.event_id, error)
        return dataclasses.replace(event, media_notice=NOT_AN_IMAGE)
