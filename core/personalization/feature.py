"""The personalization feature: wires the service into a bot through the declared seams.

    setup_personalization(bot, stack)
        prompt_contributors  → preferences (trusted), the chosen name and the most relevant
                               memories (untrusted) for each reply
        turn_observers       → after each answered turn: interest vector, facts → memories
        middlewares (feature)→ knows whose turns are in flight, so /forget can stop them
        commands             → /profile /memory /forget /export /recommend /privacy /link /unlink
        services             → ``personalization`` (the service, for the CLI and the console)
        tools                → memory_recall, memory_save (the user's own), recommend (core/tools/builtin.py)
        retention            → a background sweep when [storage] retention_days is set
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, suppress

from core.personalization.catalog import Catalog
from core.personalization.commands import PersonalizationCommands
from core.personalization.privacy import apply_retention, retention_loop
from core.personalization.service import Personalization
from core.personalization.settings import load_personalization
from core.runtime import Runtime
from core.tools.builtin import memory_tools, recommend_tool


async def setup_personalization(bot: Runtime, stack: AsyncExitStack) -> None:
    """Feature entry point (core.bootstrap.FEATURES)."""
    options, items = load_personalization(bot.settings)
    if not options.enabled:
        return
    embedder = await bot.embedder.get(options.embedder, options.embed_batch_size)
    catalog = await Catalog.build(items, embedder)
    personas = bot.personas.all()
    vectors = await embedder.embed([f"{p.title}. {p.description} {p.style}" for p in personas])
    service = Personalization(bot, embedder, options, catalog, dict(zip([p.name for p in personas], vectors)))
    seams = bot.seams
    commands = PersonalizationCommands(service)
    seams.commands.extend(commands.specs())
    seams.tools.extend([*memory_tools(bot.store, memory_default=options.memory_default), recommend_tool(commands.recommend_command)])
    seams.prompt_contributors.append(service.contribute)
    seams.turn_observers.append(service.observe)
    seams.middlewares.add("feature", "track_turns", service.track_turns)
    seams.services.personalization = service
    days = bot.settings.storage.retention_days
    if days:
        await apply_retention(bot.store, days)  # before the first message is answered
        task = asyncio.create_task(retention_loop(bot.store, days, options.retention_check_s), name="retention")

        async def stop_retention() -> None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop_retention)
