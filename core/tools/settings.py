"""The ``[tools]`` and ``[[mcp.servers]]`` sections of a bot file (docs/tools.md).

Checked with the rest of the file, before any model loads or any server starts.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolsSettings(_Section):
    enabled: bool = True  # false: no tool is offered to the model
    disabled: tuple[str, ...] = ()  # tool names never offered
    only: tuple[str, ...] | None = None  # when given, only these tools are offered
    max_rounds: int = Field(4, ge=1, le=16)  # model → tools → model rounds per turn
    turn_budget_s: float = Field(60.0, gt=0)  # wall time for all rounds of one turn
    max_calls_per_turn: int = Field(8, ge=1, le=64)
    max_calls_per_user_per_hour: int = Field(120, ge=1)
    max_repairs: int = Field(2, ge=0, le=8)  # unknown tool, invalid JSON, repeated call: retries before a plain reply
    tool_timeout_s: float = Field(20.0, gt=0)
    max_result_chars: int = Field(4000, ge=100)  # what the model is given of one result
    confirm_ttl_s: float = Field(600.0, ge=10.0, le=86400.0)  # a call of a confirm tool waits this long for /confirm
    status: bool = True  # show "using: …" in the draft where the platform edits messages


class McpServer(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    command: str | None = None  # stdio: the program to start
    args: tuple[str, ...] = ()
    cwd: str | None = None  # working folder of a stdio server
    url: str | None = None  # streamable HTTP endpoint
    env: tuple[str, ...] = ()  # names of environment variables passed to the server (values never in the file)
    headers: dict[str, str] = {}  # streamable HTTP: header name -> the environment variable holding its value
    allow: tuple[str, ...] | None = None  # tool names offered; None: every tool the server lists
    admin_only: bool = False  # its tools only for admins
    groups_allowed: bool = True
    start_timeout_s: float = Field(20.0, gt=0)
    call_timeout_s: float = Field(30.0, gt=0)
    max_restarts: int = Field(5, ge=0)

    @model_validator(mode="after")
    def _one_transport(self) -> "McpServer":
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (stdio) or url (streamable HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.headers and self.url is None:
            raise ValueError("headers are for a url (streamable HTTP) server; a stdio server takes env")
        return self

    @field_validator("env")
    @classmethod
    def _env_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _ENV_NAME.match(name):
                raise ValueError(f"env lists variable names, not values: {name!r} is not a name")
        return names

    @field_validator("headers")
    @classmethod
    def _header_env_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for header, name in headers.items():
            if not re.match(r"^[A-Za-z0-9-]{1,64}$", header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if not _ENV_NAME.match(name):
                raise ValueError(f"headers name the environment variable holding each value: {name!r} is not a name")
        return headers


class McpSettings(_Section):
    servers: tuple[McpServer, ...] = ()

    @field_validator("servers")
    @classmethod
    def _unique(cls, servers: tuple[McpServer, ...]) -> tuple[McpServer, ...]:
        names = [server.name for server in servers]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"server names must be unique: {duplicated}")
        return servers
