"""The tools feature: switches the ``tools`` seam on with ``[tools]``, adds /admin tools and
/confirm, and the MCP servers of the bot file (started and stopped with the bot). Other
features declare their own tools (personalization: memories and recommendations; plugins:
``@plugin.tool``)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from core.commands import CommandSpec
from core.dispatcher import Context
from core.errors import NotFound
from core.ports import PluginStore
from core.runtime import Runtime
from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from core.tools.runner import result_text
from core.tools.spec import ToolError


def admin_tools_command(registry: ToolRegistry, servers: McpServers) -> CommandSpec:
    async def admin_tools(ctx: Context, args: tuple[str, ...]) -> str:
        lines = registry.describe() or ["No tools are declared."]
        state = "offered to the model" if registry.offer else "not offered ([tools] enabled or [model] tools is off)"
        text = f"Tools ({len(registry.all())}, {state}):\n" + "\n".join(lines)
        problems = servers.describe()
        return text + ("\nMCP servers:\n" + "\n".join(problems) if problems else "")

    return CommandSpec("tools", "List the tools the model may call", admin_tools, admin_only=True, private=True)


def confirm_command(bot: Runtime, registry: ToolRegistry) -> CommandSpec:
    async def confirm(ctx: Context, args: tuple[str, ...]) -> str:
        pending = registry.pending.take(ctx.event.user.qualified)
        if pending is None:
            raise NotFound("no pending tool call", user_message="There is nothing waiting for your approval.")
        refusal = registry.refusal(pending.tool, ctx.event)
        if refusal:
            return f"Not run: {refusal}."
        try:
            value = await pending.tool.handler(pending.ctx, **pending.arguments)
            outcome, text = "ok", result_text(value, registry.settings.max_result_chars)
        except Exception as exc:
            outcome, text = "error", f"it failed ({exc if isinstance(exc, ToolError) else type(exc).__name__})"
        await bot.store.audit(
            ctx.event.user.qualified, f"tool:{pending.tool.name}", pending.tool.owner, outcome, {"result": "confirmed"}
        )
        return f"Done ({pending.tool.name}): {text}" if outcome == "ok" else f"{pending.tool.name}: {text}"

    return CommandSpec("confirm", "Approve the action the bot asked you about", confirm, private=True)


async def setup_tools(bot: Runtime, stack: AsyncExitStack) -> None:
    settings, registry = bot.settings, bot.seams.tools
    trace_store = bot.store if isinstance(bot.store, PluginStore) else None
    registry.configure(settings.tools, bot.is_admin, offer=settings.model.tools, trace_store=trace_store)
    servers = McpServers(registry, settings.mcp.servers)
    await stack.enter_async_context(servers)
    bot.seams.commands.add(admin_tools_command(registry, servers))
    if any(tool.confirm for tool in registry.all()):
        bot.seams.commands.add(confirm_command(bot, registry))
