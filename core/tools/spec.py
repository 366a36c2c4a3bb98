"""A tool the model may call: its declaration as data, and its arguments checked before it runs.

    @tool("weather", "Today's weather in a city")
    async def weather(call: ToolContext, city: str, days: int = 1) -> str: ...

Parameters come from the handler's type hints (after its first parameter, the
:class:`ToolContext`) or from a pydantic model given as ``params``; the JSON schema the
model sees and the validation before the handler runs are the same pydantic model, so
what the model is told and what is accepted cannot drift apart. Tools from MCP servers
bring their own JSON schema (validated with ``jsonschema``).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

import jsonschema
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from core.dispatcher import Context
from core.errors import ConfigError
from core.events import IncomingMessage, ToolSpec

NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")  # what OpenAI accepts as a function name


class ArgumentsInvalid(ValueError):
    """The model's arguments do not match the schema; the message is what the model is told."""


class ToolError(Exception):
    """Raised by a tool to tell the model why it has no result (the message goes to the model;
    any other exception is reported to the model by its type only)."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """The narrow view a core tool handler gets: who asks, where, and the message they sent.
    Plugin tools get a :class:`~core.plugins.api.Turn` made from it instead."""

    turn: Context
    is_admin: bool

    @property
    def event(self) -> IncomingMessage:
        return self.turn.event

    @property
    def state(self) -> dict[str, Any]:
        return self.turn.state

    @property
    def user_id(self) -> str:
        return self.turn.event.user.qualified


ToolHandler = Callable[..., Awaitable[Any]]
Validator = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    """A declared tool. ``handler(ctx, **arguments)`` returns text or JSON-able data."""

    name: str
    description: str
    parameters: Mapping[str, Any]  # JSON schema, type "object"
    handler: ToolHandler
    validate: Validator
    admin_only: bool = False
    confirm: bool = False  # the user must approve before it runs (not offered to the model yet)
    groups_allowed: bool = True  # may run in group chats
    owner: str = "core"  # "core", "plugin:NAME" or "mcp:SERVER"
    timeout_s: float = 20.0
    secret_args: tuple[str, ...] = ()  # argument names masked in the audit

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError(f"tool {self.name!r}: names are 1-64 of a-z, A-Z, 0-9, _ and -, starting with a letter")
        if len(self.description) > 1024:
            raise ConfigError(f"tool {self.name!r}: description over 1024 characters")

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, json.dumps(dict(self.parameters), ensure_ascii=False, sort_keys=True))


def _model_validator(model: type[BaseModel]) -> Validator:
    def validate(arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as error:
            raise ArgumentsInvalid(
                "; ".join(f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg']}" for item in error.errors())
            ) from None
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    return validate


def schema_validator(schema: Mapping[str, Any]) -> Validator:
    """For a JSON schema that arrived as data (an MCP server's tool)."""
    try:
        checker = jsonschema.Draft202012Validator(dict(schema))
        checker.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON schema: {exc.message}") from None

    def validate(arguments: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(checker.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            raise ArgumentsInvalid("; ".join(f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors[:5]))
        return arguments

    return validate


def params_model(handler: ToolHandler, name: str) -> type[BaseModel]:
    """A pydantic model of the handler's parameters after the first (the ToolContext)."""
    signature = inspect.signature(handler)
    hints = get_type_hints(handler)
    fields: dict[str, Any] = {}
    for index, (param_name, param) in enumerate(signature.parameters.items()):
        if index == 0:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool {name!r}: *args and **kwargs cannot be described to a model")
        if param_name not in hints:
            raise ConfigError(f"tool {name!r}: parameter {param_name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param_name] = (hints[param_name], default)
    return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)  # type: ignore[call-overload]


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("properties", {})
    schema["type"] = "object"
    return schema


def make_tool(
    handler: ToolHandler,
    name: str,
    description: str,
    *,
    params: type[BaseModel] | None = None,
    admin_only: bool = False,
    confirm: bool = False,
    groups_allowed: bool = True,
    owner: str = "core",
    timeout_s: float = 20.0,
    secret_args: tuple[str, ...] = (),
) -> Tool:
    """A Tool from an async handler; ``params`` (a pydantic model) replaces the type hints:
    the handler is then called as ``handler(ctx, model_instance)``."""
    if not inspect.iscoroutinefunction(handler):
        raise ConfigError(f"tool {name!r}: the handler must be an async function")
    if params is not None:
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise ConfigError(f"tool {name!r}: params must be a pydantic BaseModel class")
        model = params

        async def call_with_model(ctx: ToolContext, **arguments: Any) -> Any:
            return await handler(ctx, model(**arguments))

        run: ToolHandler = call_with_model
    else:
        model, run = params_model(handler, name), handler
    return Tool(
        name, description.strip(), schema_of(model), run, _model_validator(model), admin_only=admin_only,
        confirm=confirm, groups_allowed=groups_allowed, owner=owner, timeout_s=timeout_s, secret_args=secret_args,
    )


def tool(name: str, description: str, **flags: Any) -> Callable[[ToolHandler], Tool]:
    """Decorator form of :func:`make_tool` for core features' own tools."""

    def declare(handler: ToolHandler) -> Tool:
        return make_tool(handler, name, description, **flags)

    return declare
