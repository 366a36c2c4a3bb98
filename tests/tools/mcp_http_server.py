"""A small streamable-HTTP MCP server written with the official SDK, served by uvicorn on
127.0.0.1 inside the test (tests/tools/test_mcp_http.py). Requests without the expected
``Authorization`` header get 401."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send


def mcp_app(token: str) -> ASGIApp:
    server = MCPServer("personabot-http-test")

    @server.tool(description="Multiply two integers")
    def multiply(a: int, b: int) -> int:
        return a * b

    @server.tool(description="Echo a text back")
    def echo(text: str) -> str:
        return f"echo: {text}"

    app = server.streamable_http_app()

    async def with_auth(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != f"Bearer {token}".encode():
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return with_auth


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def serving(token: str, port: int | None = None) -> AsyncIterator[str]:
    """Serve the app until the block ends; yields its /mcp URL."""
    port = port or free_port()
    config = uvicorn.Config(mcp_app(token), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await task
