"""The ``tools`` seam: every tool the bot knows, and which of them one turn may offer.

Core features, plugins and MCP servers add :class:`~core.tools.spec.Tool` objects; the
tools feature (core/tools/feature.py) switches the seam on with the bot file's
``[tools]`` section and the bot's admin policy. Until then nothing is offered and a
chat turn is exactly a plain turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.errors import ConfigError
from core.events import ChatKind, IncomingMessage
from core.ports import PluginStore
from core.tools.settings import ToolsSettings
from core.tools.spec import Tool

AdminCheck = Callable[[IncomingMessage], bool]


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self.settings = ToolsSettings()
        self._is_admin: AdminCheck | None = None
        self.offer = False  # the model backend takes tools ([model] tools) and the feature is on
        self.trace_store: PluginStore | None = None  # where a turn's calls are kept (with the user's data)

    def configure(
        self, settings: ToolsSettings, is_admin: AdminCheck, *, offer: bool, trace_store: PluginStore | None
    ) -> None:
        self.settings, self._is_admin, self.offer = settings, is_admin, offer and settings.enabled
        self.trace_store = trace_store

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ConfigError(f"tool {tool.name!r} is declared twice ({self._tools[tool.name].owner} and {tool.owner})")
        self._tools[tool.name] = tool

    def extend(self, tools: Iterable[Tool]) -> None:
        for tool in tools:
            self.add(tool)

    def remove_owner(self, owner: str) -> int:
        """Drop every tool of one source (an MCP server that went away)."""
        gone = [name for name, tool in self._tools.items() if tool.owner == owner]
        for name in gone:
            del self._tools[name]
        return len(gone)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def all(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda tool: tool.name)

    def enabled(self, tool: Tool) -> bool:
        """What the bot file allows, whoever asks."""
        settings = self.settings
        if tool.name in settings.disabled:
            return False
        return settings.only is None or tool.name in settings.only

    def is_admin(self, event: IncomingMessage) -> bool:
        return bool(self._is_admin and self._is_admin(event))

    def refusal(self, tool: Tool, event: IncomingMessage) -> str | None:
        """Why ``tool`` may not run for this event (None: it may). Said to the model, not the user."""
        if not self.enabled(tool):
            return f"the tool {tool.name} is disabled on this bot"
        if tool.admin_only and not self.is_admin(event):
            return f"the tool {tool.name} is for administrators only"
        if not tool.groups_allowed and event.chat_kind is ChatKind.GROUP:
            return f"the tool {tool.name} cannot be used in group chats"
        return None

    def offered(self, event: IncomingMessage) -> list[Tool]:
        """The tools this turn's model is told about (admin-only ones never to non-admins)."""
        if not self.offer:
            return []
        return [tool for tool in self.all() if self.refusal(tool, event) is None]

    def describe(self) -> list[str]:
        lines = []
        for tool in self.all():
            flags = [flag for flag, on in (("admin", tool.admin_only), ("confirm", tool.confirm),
                                           ("no groups", not tool.groups_allowed)) if on]
            state = "on" if self.enabled(tool) else "off"
            extra = f" [{', '.join(flags)}]" if flags else ""
            lines.append(f"{tool.name} ({tool.owner}, {state}){extra}: {tool.description.splitlines()[0][:80]}")
        return lines
