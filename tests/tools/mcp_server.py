"""A small stdio MCP server written with the official SDK, started by tests/tools/test_mcp.py.

    python -m tests.tools.mcp_server [--garbage]

``--garbage`` prints a line that is not JSON-RPC before serving and then never answers
(a broken server the bot must isolate).
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("personabot-test")


@server.tool(description="Add two integers")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="The value of MCP_TEST_TOKEN as the server sees it")
def token_seen() -> str:
    return "set" if os.environ.get("MCP_TEST_TOKEN") else "unset"


@server.tool(description="Not in the allow list")
def hidden() -> str:
    return "should never be called"


@server.tool(description="Exits the server process")
def die() -> str:
    os._exit(3)


if __name__ == "__main__":
    if "--garbage" in sys.argv:
        print("this is not json-rpc <|im_end|>", flush=True)
        time.sleep(3600)
    server.run()
