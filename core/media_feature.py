"""The media feature: each image's platform reference kept with the user's data.

A turn observer stores ``[{"ref", "mime_type", "size"}]`` under the plugin-store namespace
``media`` (key ``turn:ID``, the user's rows): in /export, deleted on /forget. The bytes are
never stored.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from core.dispatcher import Context
from core.ports import PluginStore
from core.records import StoredMessage
from core.runtime import Runtime

MEDIA_NAMESPACE = "media"


async def setup_media(bot: Runtime, stack: AsyncExitStack) -> None:
    """Keep the references of a turn's images with the user's data (a turn observer)."""
    store = bot.store
    if not isinstance(store, PluginStore):
        return

    async def keep_references(ctx: Context, user_turn: StoredMessage, reply: str) -> None:
        images = ctx.event.images
        if images:
            kept = [{"ref": image.ref, "mime_type": image.mime_type, "size": image.size} for image in images]
            await store.plugin_set(MEDIA_NAMESPACE, f"turn:{user_turn.id}", kept, user_id=ctx.event.user.qualified)

    bot.seams.turn_observers.append(keep_references)
