"""The tools feature: switches the ``tools`` seam on with ``[tools]``, adds /admin tools and
/confirm, and the MCP servers of the bot file (started and stopped with the bot). Other
features declare their own tools (personalization: memories and recommendations; plugins:
``@plugin.tool``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from core import confirmations
from core.commands import CommandSpec
from core.dispatcher import Context
from core.i18n import N_
from core.ports import PluginStore, Store
from core.runtime import Runtime
from core.tools import confirm as held_calls
from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from core.tools.runner import result_text
from core.tools.spec import ArgumentsInvalid, ToolContext, ToolError


def admin_tools_command(registry: ToolRegistry, servers: McpServers) -> CommandSpec:
    async def admin_tools(ctx: Context, args: tuple[str, ...]) -> str:
        lines = registry.describe() or ["No tools are declared."]
        state = "offered to the model" if registry.offer else "not offered ([tools] enabled or [model] tools is off)"
        text = f"Tools ({len(registry.all())}, {state}):\n" + "\n".join(lines)
        problems = servers.describe()
        return text + ("\nMCP servers:\n" + "\n".join(problems) if problems else "")

    return CommandSpec("tools", "List the tools the model may call", admin_tools, admin_only=True, private=True)


def confirm_command(store: Store, registry: ToolRegistry, clock: Callable[[], float] = time.time) -> CommandSpec:
    async def audit(ctx: Context, tool: str, owner: str, outcome: str, result: str) -> None:
        await store.audit(ctx.event.user.qualified, held_calls.AUDIT_ACTION, f"{owner}:{tool}".strip(":"), outcome,
                          {"result": result})

    async def confirm(ctx: Context, args: tuple[str, ...]) -> str:
        event, now = ctx.event, clock()
        taken = await confirmations.take(store, held_calls.user_scope(event.user.qualified), held_calls.NAME, now=now)
        name = str(taken.payload.get("tool", ""))
        if taken.status == "none":
            if await held_calls.someone_else_waits(store, event, now):
                await audit(ctx, "", "", "denied", "not theirs")
                return ctx.t("That action waits for the approval of the person who asked for it.")
            return ctx.t("There is nothing waiting for your approval.")
        if taken.status != "ok":
            await audit(ctx, name, "", "denied", taken.status)
            if taken.status == "expired":
                return ctx.t("That request has expired. Please ask again.")
            return ctx.t("That action was already approved.")
        await store.set_setting(held_calls.chat_scope(event), held_calls.NAME, None)
        tool = registry.get(name)
        if tool is None:
            await audit(ctx, name, "", "error", "unknown tool")
            return ctx.t("Not run: that tool is no longer available.")
        refusal = registry.refusal(tool, event)
        if refusal:
            await audit(ctx, name, tool.owner, "denied", "refused")
            return ctx.t("Not run: {why}.", why=refusal)
        try:
            arguments = tool.validate(dict(taken.payload.get("arguments") or {}))
            limit = min(tool.timeout_s, registry.settings.tool_timeout_s)
            value = await asyncio.wait_for(tool.handler(ToolContext(ctx, registry.is_admin(event)), **arguments), limit)
            outcome, text = "ok", result_text(value, registry.settings.max_result_chars)
        except Exception as exc:
            outcome = "error"
            text = str(exc) if isinstance(exc, (ToolError, ArgumentsInvalid)) else type(exc).__name__
        await audit(ctx, name, tool.owner, outcome, "confirmed" if outcome == "ok" else "failed")
        if outcome == "ok":
            return ctx.t("Done ({tool}): {result}", tool=name, result=text)
        return ctx.t("{tool} failed: {why}", tool=name, why=text)

    return CommandSpec("confirm", N_("Approve the action the bot asked you about"), confirm, private=True)


async def setup_tools(bot: Runtime, stack: AsyncExitStack) -> None:
    settings, registry = bot.settings, bot.seams.tools
    trace_store = bot.store if isinstance(bot.store, PluginStore) else None
    registry.configure(settings.tools, bot.is_admin, offer=settings.model.tools, trace_store=trace_store)
    servers = McpServers(registry, settings.mcp.servers)
    await stack.enter_async_context(servers)
    bot.seams.commands.add(admin_tools_command(registry, servers))
    if any(tool.confirm for tool in registry.all()):
        bot.seams.commands.add(confirm_command(bot.store, registry))
