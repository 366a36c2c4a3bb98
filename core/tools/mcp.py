"""MCP servers as a source of tools, through the official ``mcp`` SDK (docs/tools.md).

Each ``[[mcp.servers]]`` entry gets a supervisor task that starts the server (a stdio
command or a streamable HTTP URL), lists its tools (the ``allow`` list filters them)
and adds them to the bot's tool registry as ``mcp:NAME``. When the server dies or stops
answering pings, its tools leave the registry and it is started again with exponential
backoff, at most ``max_restarts`` times. A server that fails to start or hangs is
reported (log, ``/admin tools``) and the bot runs without it. Only the environment
variables the entry names are passed to a stdio server, and their values are masked in
every log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from core.errors import ConfigError
from core.logmask import masking_env
from core.tools.registry import ToolRegistry
from core.tools.settings import McpServer
from core.tools.spec import Tool, ToolContext, ToolError, schema_validator

log = logging.getLogger(__name__)

PING_EVERY_S = 15.0
STOP_GRACE_S = 10.0  # a hung stdio server is terminated, then killed, by the SDK within this
BACKOFF_S, MAX_BACKOFF_S = 1.0, 60.0


class ToolFailed(ToolError):
    """An MCP tool answered with ``is_error`` (its text is what the model is told)."""


def _content_text(result: Any) -> str:
    parts = []
    for block in getattr(result, "content", None) or ():
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')}]")
    if not parts and getattr(result, "structured_content", None) is not None:
        import json

        return json.dumps(result.structured_content, ensure_ascii=False, default=str)
    return "\n".join(parts)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _Server:
    def __init__(self, config: McpServer, registry: ToolRegistry) -> None:
        self.config, self.registry = config, registry
        self.owner = f"mcp:{config.name}"
        self.state = "starting"
        self.problem = ""
        self.restarts = 0
        self.started = asyncio.Event()  # the first attempt ended (up or failed)
        self.up = asyncio.Event()  # set while the server runs and its tools are in the registry
        self._broken = asyncio.Event()
        self._session: Any = None
        self._errlog = sys.stderr  # the server's own stderr (its logs) goes to ours
        self._http_error = ""  # the last HTTP error status a url server answered

    def describe(self) -> str:
        tools = [tool.name for tool in self.registry.all() if tool.owner == self.owner]
        detail = f": {self.problem}" if self.problem else ""
        return f"{self.config.name} ({self.state}, {len(tools)} tools, {self.restarts} restarts){detail}"

    def _transport(self) -> Any:
        config = self.config
        if config.url is not None:
            return self._http_transport()
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        env = {name: os.environ[name] for name in config.env if name in os.environ}
        missing = [name for name in config.env if name not in os.environ]
        if missing:
            log.warning("mcp server %s: environment variable(s) %s not set", config.name, missing)
        parameters = StdioServerParameters(command=config.command or "", args=list(config.args), env=env, cwd=config.cwd)
        return stdio_client(parameters, errlog=self._errlog)

    @contextlib.asynccontextmanager
    async def _http_transport(self) -> Any:
        """Streamable HTTP with the headers the entry names, their values read from the environment."""
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        config = self.config
        missing = sorted({name for name in config.headers.values() if name not in os.environ})
        if missing:
            log.warning("mcp server %s: environment variable(s) %s not set", config.name, missing)
        headers = {header: os.environ[name] for header, name in config.headers.items() if name in os.environ}
        async def note_status(response: Any) -> None:  # the SDK's error says "error response", not which
            if response.status_code >= 400:
                self._http_error = f"HTTP {response.status_code}"

        async with create_mcp_http_client(headers=headers) as client:
            client.event_hooks = {**client.event_hooks, "response": [*client.event_hooks.get("response", []), note_status]}
            async with streamable_http_client(config.url or "", http_client=client) as streams:
                yield streams

    async def supervise(self) -> None:
        config = self.config
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # an ExceptionGroup from the SDK's task group, an OSError, a timeout
                leaf = _leaf(exc)
                if isinstance(leaf, TimeoutError) and not self.problem:
                    self.problem = f"no answer within {config.start_timeout_s:g} s"
                else:
                    answered = f" ({self._http_error})" if self._http_error else ""
                    self.problem = self.problem or f"{type(leaf).__name__}: {leaf}{answered}"[:300]
                log.warning("mcp server %s failed: %s", config.name, self.problem)
            finally:
                self.up.clear()
                self.registry.remove_owner(self.owner)
                self._session = None
                self.started.set()
            if self.restarts >= config.max_restarts:
                self.state = "stopped"
                log.error("mcp server %s: gave up after %d restarts", config.name, self.restarts)
                return
            self.state = "restarting"
            delay = min(MAX_BACKOFF_S, BACKOFF_S * 2**self.restarts)
            self.restarts += 1
            await asyncio.sleep(delay)

    async def _run_once(self) -> None:
        from mcp import ClientSession

        config = self.config
        self._broken.clear()
        self.problem, self._http_error = "", ""
        async with contextlib.AsyncExitStack() as stack:
            # asyncio.timeout, not wait_for: the SDK's task groups must be entered and left in this task
            async with asyncio.timeout(config.start_timeout_s):
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await session.list_tools()
            self._session = session
            added = self._register(listed.tools)
            self.state, self.problem = "running", ""
            self.up.set()
            self.started.set()
            log.info("mcp server %s: %d tools (%s)", config.name, len(added), ", ".join(added))
            while not self._broken.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._broken.wait(), PING_EVERY_S)
                if not self._broken.is_set():
                    try:
                        async with asyncio.timeout(config.call_timeout_s):
                            await session.send_ping()
                    except Exception as exc:
                        raise ConnectionError(f"no answer to ping: {type(exc).__name__}") from exc
            raise ConnectionError(self.problem or "the server stopped answering")

    def _register(self, listed: Sequence[Any]) -> list[str]:
        allow = self.config.allow
        added = []
        for declared in listed:
            if allow is not None and declared.name not in allow:
                continue
            try:
                tool = Tool(
                    declared.name,
                    (declared.description or declared.name)[:1024],
                    declared.input_schema,
                    self._caller(declared.name),
                    schema_validator(declared.input_schema),
                    admin_only=self.config.admin_only,
                    groups_allowed=self.config.groups_allowed,
                    owner=self.owner,
                    timeout_s=self.config.call_timeout_s,
                )
                self.registry.add(tool)
            except ConfigError as exc:
                log.warning("mcp server %s: tool %r left out: %s", self.config.name, declared.name, exc)
                continue
            added.append(declared.name)
        return added

    def _caller(self, name: str) -> Any:
        async def call(ctx: ToolContext, **arguments: Any) -> str:
            session = self._session
            if session is None:
                raise ToolFailed(f"the {self.config.name} server is not running")
            try:
                async with asyncio.timeout(self.config.call_timeout_s):
                    result = await session.call_tool(name, arguments)
            except asyncio.TimeoutError:
                self.problem = f"tool {name} timed out"
                self._broken.set()  # a hung server is restarted, its tools leave meanwhile
                raise
            except Exception as exc:
                if isinstance(exc, (ConnectionError, OSError)) or "closed" in str(exc).lower():
                    self.problem = f"connection lost: {type(exc).__name__}"
                    self._broken.set()
                raise
            text = _content_text(result)
            if getattr(result, "is_error", False):
                raise ToolFailed(text or "the tool reported an error")
            return text

        return call


class McpServers:
    """All servers of one bot; ``async with`` starts them (waiting for each first attempt) and stops them."""

    def __init__(self, registry: ToolRegistry, configs: Sequence[McpServer]) -> None:
        self.servers = [_Server(config, registry) for config in configs]
        self._tasks: list[asyncio.Task] = []
        self._mask = contextlib.ExitStack()

    async def __aenter__(self) -> "McpServers":
        if not self.servers:
            return self
        self._mask.enter_context(masking_env([name for s in self.servers for name in (*s.config.env, *s.config.headers.values())]))
        started = time.monotonic()
        self._tasks = [asyncio.create_task(server.supervise(), name=f"mcp:{server.config.name}") for server in self.servers]
        for server in self.servers:
            left = server.config.start_timeout_s + STOP_GRACE_S - (time.monotonic() - started)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.started.wait(), max(0.1, left))
            if server.state != "running":
                log.error("mcp server %s did not start (%s); the bot runs without it",
                          server.config.name, server.problem or "no answer in time")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._mask.close()

    def describe(self) -> list[str]:
        return [server.describe() for server in self.servers]
