"""How a loaded plugin attaches to the bot's seams, and the guards around every call of its code.

Each part a plugin declares becomes one seam entry: commands, message handlers (routes
before ``chat``), middlewares in their declared stage, prompt contributors, reply
filters, personas. Every call is guarded: an exception is logged with the plugin's name,
counted, and the user gets a short apology (PluginError); everything else goes on.
A plugin that raises a BaseException other than cancellation or Ctrl+C (``sys.exit``…)
or holds the event loop (core/plugins/watchdog.py) is disabled on the spot: one log
line, a note in ``/admin plugins``, and from then on its parts stand aside (its
commands answer an apology, its handlers match nothing, its middlewares pass through).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from core.commands import CommandSpec
from core.dispatcher import Context, Handler, Route
from core.errors import ConfigError, PersonabotError, PluginError
from core.events import Reply
from core.i18n import Msg, _
from core.personas import Persona
from core.plugins.api import CONTINUE, MessageHandler, Plugin, Turn
from core.plugins.context import PluginContext
from core.plugins.watchdog import PluginStalled, Watchdog
from core.prompt import PromptSection
from core.runtime import Runtime
from core.tools.spec import Tool, ToolContext

T = TypeVar("T")


@dataclass
class LoadedPlugin:
    plugin: Plugin
    ctx: PluginContext
    origin: str
    failures: int = 0  # guarded calls that raised since start
    disabled: str = ""  # why it was disabled while running (sys.exit, a stalled loop…); "" while active


PASS_THROUGH = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)  # never a plugin's failure


def apology(plugin: str) -> Msg:
    return _("Sorry, the {plugin} feature had a problem with that. Everything else still works; please try later.", plugin=plugin)


class PluginWiring:
    def __init__(self, bot: Runtime, watchdog: Watchdog | None = None) -> None:
        self.bot = bot
        self.watchdog = watchdog or Watchdog()

    def disable(self, loaded: LoadedPlugin, what: str, exc: BaseException) -> None:
        """Take a running plugin out: one log line, the reason kept for ``/admin plugins``."""
        if loaded.disabled:
            return
        if isinstance(exc, PluginStalled):
            loaded.disabled = f"{what} blocked the event loop ({exc}); interrupted"
        else:
            loaded.disabled = f"{what} raised {type(exc).__name__}: {exc}"
        loaded.ctx.log.error("plugin %s disabled: %s; the bot goes on without it", loaded.plugin.name, loaded.disabled,
                             exc_info=None if isinstance(exc, PluginStalled) else exc)

    def watched_sync(self, loaded: LoadedPlugin, what: str, call: Callable[[], T]) -> tuple[bool, T | None]:
        """Run a plugin's synchronous code; (False, None) when it had to be disabled for it."""
        try:
            with self.watchdog.step(loaded.plugin.name):
                return True, call()
        except BaseException as exc:
            if isinstance(exc, (Exception, *PASS_THROUGH)):
                raise
            self.disable(loaded, what, exc)
            return False, None

    async def watched(self, loaded: LoadedPlugin, what: str, call: Awaitable[T]) -> T:
        """Await a plugin's coroutine under the watchdog; a fatal BaseException disables the
        plugin and comes back as a PluginError (an Exception passes unchanged)."""
        if loaded.disabled:
            if asyncio.iscoroutine(call):
                call.close()
            raise PluginError(f"plugin {loaded.plugin.name} is disabled: {loaded.disabled}",
                              user_message=apology(loaded.plugin.name))
        try:
            return await self.watchdog.run(loaded.plugin.name, call)
        except BaseException as exc:
            if isinstance(exc, (Exception, *PASS_THROUGH)):
                raise
            self.disable(loaded, what, exc)
            loaded.failures += 1
            raise PluginError(f"plugin {loaded.plugin.name}: {what}: {loaded.disabled}",
                              user_message=apology(loaded.plugin.name)) from None

    def unknown_anchors(self, plugin: Plugin) -> list[str]:
        """Middleware anchors of ``plugin`` that name no middleware registered so far."""
        known = set(self.bot.seams.middlewares.names())
        return [
            f"middleware {m.name}: {'before' if m.before else 'after'} {m.before or m.after!r} names no middleware"
            for m in plugin.middlewares
            if (m.before or m.after) and (m.before or m.after) not in known
        ]

    def wire(self, loaded: LoadedPlugin) -> None:
        seams, plugin = self.bot.seams, loaded.plugin
        for spec in plugin.commands:
            seams.commands.add(replace(spec, handler=self._command(loaded, spec)))
        for handler in plugin.message_handlers:
            seams.routes.add(self._route(loaded, handler), before="chat")
        for middleware in plugin.middlewares:
            seams.middlewares.add(
                middleware.stage,
                f"plugin:{plugin.name}:{middleware.name}",
                self._middleware(loaded, middleware.handler),
                before=middleware.before,
                after=middleware.after,
            )
        for contributor in plugin.contributors:
            seams.prompt_contributors.append(self._contributor(loaded, contributor))
        for reply_filter in plugin.reply_filters:
            seams.reply_filters.append(self._reply_filter(loaded, reply_filter))
        seams.personas.extend(plugin.personas)
        for declared in plugin.tools:
            seams.tools.add(replace(declared, handler=self._tool(loaded, declared)))

    async def _guard(self, loaded: LoadedPlugin, what: str, call: Awaitable[T]) -> T:
        """Await a plugin's code: its deliberate PersonabotErrors pass, anything else becomes an apology."""
        try:
            return await self.watched(loaded, what, call)
        except Exception as exc:
            if isinstance(exc, PersonabotError) and not isinstance(exc, ConfigError):
                raise  # a deliberate answer (usage, not found…); a ConfigError is the plugin's bug
            raise self._failure(loaded, what, exc) from exc

    @staticmethod
    def _failure(loaded: LoadedPlugin, what: str, exc: Exception) -> PluginError:
        loaded.failures += 1
        loaded.ctx.log.error("plugin %s: %s failed: %s", loaded.plugin.name, what, exc, exc_info=exc)
        return PluginError(
            f"plugin {loaded.plugin.name}: {what} failed: {type(exc).__name__}: {exc}",
            user_message=apology(loaded.plugin.name),
        )

    def _command(self, loaded: LoadedPlugin, spec: CommandSpec) -> Callable[[Context, tuple[str, ...]], Awaitable[Any]]:
        handler = spec.handler

        async def run(ctx: Context, args: tuple[str, ...]) -> Reply | str | None:
            turn = Turn(loaded.ctx, ctx, args=args)
            return await self._guard(loaded, f"command /{spec.qualified_name}", handler(turn))  # type: ignore[arg-type]

        return run

    def _route(self, loaded: LoadedPlugin, declared: MessageHandler) -> Route:
        name = f"plugin:{loaded.plugin.name}:{declared.name}"
        match_key = f"match:{name}"

        def matches(ctx: Context) -> bool:
            event = ctx.event
            if loaded.disabled or event.command is not None or not (event.addressed_to_bot or declared.unaddressed):
                return False
            try:
                tested, result = self.watched_sync(loaded, f"trigger of {declared.name}", lambda: declared.trigger.test(event))
            except Exception:
                loaded.failures += 1
                loaded.ctx.log.exception("plugin %s: trigger of %s failed", loaded.plugin.name, declared.name)
                return False
            if not tested or not result:
                return False
            ctx.state[match_key] = result if isinstance(result, re.Match) else None
            return True

        async def handle(ctx: Context) -> None:
            turn = Turn(loaded.ctx, ctx, match=ctx.state.pop(match_key, None))
            answer = await self._guard(loaded, f"message handler {declared.name}", declared.handler(turn))
            if answer is CONTINUE:
                await self._route_after(ctx, name)
                return
            for notice in ctx.notices:
                await ctx.reply(notice)
            ctx.notices.clear()
            if answer is not None:
                reply = answer if isinstance(answer, Reply) else Reply(ctx.t(answer) if isinstance(answer, str) else str(answer))
                await ctx.reply(reply)
                await self._record(ctx, reply.text)

        return Route(name, matches, handle)

    async def _record(self, ctx: Context, answer: str) -> None:
        """Keep a handler's exchange in the conversation, as a chat turn is kept.

        The model then sees it in later prompts, and the message counts as stored and
        answered (`personabot ask`, de-duplication, /export). Stored once answered, so a
        crash in between leaves no turn for crash recovery to give to the model instead.
        """
        event, store = ctx.event, self.bot.store
        async with self.bot.chat.lock(event.key.qualified):
            await store.touch_user(event.user.qualified, event.user_display_name)
            conversation = await store.active_conversation(event.key)
            turn = await store.add_user_message(conversation.id, event.user.qualified, event.text, event.event_id)
            await store.add_reply(turn.id, answer)

    async def _route_after(self, ctx: Context, name: str) -> None:
        """Routing continues after the route ``name`` (a handler returned CONTINUE)."""
        routes = self.bot.seams.routes.routes
        index = next(i for i, route in enumerate(routes) if route.name == name)
        for route in routes[index + 1 :]:
            if route.matches(ctx):
                ctx.state["route"] = route.name
                await route.handle(ctx)
                return

    def _middleware(self, loaded: LoadedPlugin, middleware: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        label = getattr(middleware, "__name__", "middleware")

        async def plugin_middleware(ctx: Context, call_next: Handler) -> None:
            if loaded.disabled:
                await call_next(ctx)
                return
            downstream: list[BaseException] = []
            done = False

            async def next_step() -> None:
                nonlocal done
                if done:
                    return  # called twice: the event was already handled
                done = True
                try:
                    await self.watchdog.outside(call_next(ctx))  # the rest of the chain is not the plugin's code
                except BaseException as exc:
                    downstream.append(exc)
                    raise

            try:
                await self.watched(loaded, f"middleware {label}", middleware(Turn(loaded.ctx, ctx), next_step))
            except PluginError as exc:
                if (downstream and exc is downstream[0]) or not loaded.disabled:
                    raise  # the chain's own error, or a deliberate answer of the plugin
                if not done:  # disabled right now: the event goes on without the plugin
                    await call_next(ctx)
            except Exception as exc:
                if (downstream and exc is downstream[0]) or (
                    isinstance(exc, PersonabotError) and not isinstance(exc, ConfigError)
                ):
                    raise  # not a failure of the plugin: the dispatcher answers it
                failure = self._failure(loaded, f"middleware {label}", exc)
                if done:
                    return  # the user has their answer already; an apology now would only confuse
                raise failure from exc

        return plugin_middleware

    def _tool(self, loaded: LoadedPlugin, declared: Tool) -> Callable[..., Awaitable[Any]]:
        """The plugin's handler gets a Turn; a failure is counted like any of its hooks' and the
        model is told the tool failed (the runner reports it)."""
        handler = declared.handler

        async def run(call: ToolContext, **arguments: Any) -> Any:
            return await self._guard(loaded, f"tool {declared.name}", handler(Turn(loaded.ctx, call.turn), **arguments))

        return run

    def _contributor(self, loaded: LoadedPlugin, contributor: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[list[PromptSection]]]:
        async def contribute(ctx: Context, persona: Persona) -> list[PromptSection]:
            """A failing contributor costs its context only: the reply still comes."""
            if loaded.disabled:
                return []
            try:
                produced = await self.watched(loaded, "prompt contributor", contributor(Turn(loaded.ctx, ctx), persona)) or ()
                sections = [item if isinstance(item, PromptSection) else PromptSection(str(item)) for item in produced]
            except Exception:
                if loaded.disabled:
                    return []  # just now: already logged
                loaded.failures += 1
                loaded.ctx.log.exception("plugin %s: prompt contributor failed", loaded.plugin.name)
                return []
            return sections

        return contribute

    def _reply_filter(self, loaded: LoadedPlugin, reply_filter: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
        async def edit(ctx: Context, text: str) -> str:
            if loaded.disabled:
                return text
            try:
                edited = await self.watched(loaded, "reply filter", reply_filter(Turn(loaded.ctx, ctx), text))
            except Exception:
                if loaded.disabled:
                    return text  # just now: already logged
                loaded.failures += 1
                loaded.ctx.log.exception("plugin %s: reply filter failed; reply left as it was", loaded.plugin.name)
                return text
            return edited if isinstance(edited, str) else text

        return edit
