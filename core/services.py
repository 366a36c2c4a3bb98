"""Public service Protocols: what features publish for others in ``seams.services``.

Other features, the CLI and the web console use a feature's service through these
Protocols only, never its module's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.catalog import CatalogItem


@dataclass(frozen=True, slots=True)
class PluginStatus:
    name: str
    state: str  # active | disabled (import or setup failed) | refused (contract)
    origin: str
    reason: str = ""
    commands: tuple[str, ...] = ()


class PersonalizationService(Protocol):
    async def forget(self, user: str, actor: str = "system") -> tuple[list[str], dict[str, int]]:
        """Stop the user's replies in flight, then delete everything about them (linked ids
        too), audited as done by ``actor`` (the web console passes its operator)."""
        ...


class PluginService(Protocol):
    def describe(self) -> list[PluginStatus]: ...

    def active_names(self) -> list[str]: ...

    def catalog(self) -> list[CatalogItem]: ...

    async def export_user(self, user_id: str) -> dict[str, Any]: ...

    async def forget_user(self, user_id: str) -> dict[str, int]: ...
