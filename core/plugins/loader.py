"""Finding plugins and reading the bot file's ``[plugins]`` section.

    [plugins]
    enabled = ["knowledge", "hello"]   # by name: installed packages, bundled examples, or paths
    [plugins.paths]
    hello = "my_plugins/hello.py"      # a local module (or package folder), relative to the bot file
    [plugins.knowledge]                # each plugin's own section, validated by its own schema
    folder = "support_kb"

Installed packages announce plugins in the entry-point group ``personabot.plugins``
(``knowledge = "my_package.knowledge"``: a module with a ``plugin`` attribute, or
``"my_package.knowledge:plugin"``). The examples shipped with personabot are found
without an entry point; an installed plugin of the same name takes precedence.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError
from core.plugins.api import NAME_PATTERN, RESERVED_NAMES, Plugin
from core.settings import BotSettings

ENTRY_POINT_GROUP = "personabot.plugins"
BUNDLED = {
    "knowledge": "plugins.knowledge",
    "reminders": "plugins.reminders",
    "lessons": "plugins.lessons",
    "daily": "plugins.daily",
}
PLATFORM_LIBRARIES = frozenset({"discord", "telegram", "adapters"})


class PluginLoadError(Exception):
    """A plugin's own code is broken (import failed, no plugin object): the plugin is disabled."""


@dataclass(frozen=True, slots=True)
class PluginSource:
    name: str
    origin: str  # shown to operators: where the plugin comes from
    load: Callable[[], tuple[Plugin, list[Path]]]  # the plugin and its source files


class PluginsSection(BaseModel):
    """The ``[plugins]`` section; other keys are the plugins' own config tables."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: tuple[str, ...] = ()
    paths: dict[str, str] = {}
    # A plugin step (code between two awaits) longer than this stalls every chat: the
    # plugin is interrupted and disabled (core/plugins/watchdog.py).
    stall_s: float = Field(5.0, gt=0.0, le=600.0)

    def configs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def read_section(settings: BotSettings) -> PluginsSection:
    """Validate the section's shape; errors name the file and the field."""
    where = str(settings.source or "bot file")
    try:
        section = PluginsSection.model_validate(settings.plugins)
    except ValidationError as exc:
        lines = [f"{where}: plugins.{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    enabled = section.enabled
    for name in enabled:
        if not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
            raise ConfigError(f"{where}: plugins.enabled: {name!r} is not a plugin name")
    if len(set(enabled)) != len(enabled):
        raise ConfigError(f"{where}: plugins.enabled: a plugin is listed twice")
    for name in section.paths:
        if name not in enabled:
            raise ConfigError(f"{where}: plugins.paths.{name}: plugin {name!r} is not in plugins.enabled")
    for name, value in section.configs().items():
        if name not in enabled:
            raise ConfigError(f"{where}: plugins.{name}: configuration for plugin {name!r}, which is not enabled")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: plugins.{name}: expected a table ([plugins.{name}])")
    return section


def validate_config(plugin: Plugin, raw: dict[str, Any], where: str) -> BaseModel | None:
    """The plugin's config as its own schema reads it; ConfigError names plugin, file and field."""
    if plugin.config_model is None:
        if raw:
            raise ConfigError(f"{where}: plugins.{plugin.name}: plugin {plugin.name} takes no configuration")
        return None
    try:
        return plugin.config_model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for item in exc.errors():
            field = ".".join(str(part) for part in (plugin.name, *item["loc"]))
            lines.append(f"{where}: plugins.{field}: {item['msg']} (plugin {plugin.name})")
        raise ConfigError("\n".join(lines)) from None


# --- discovery --------------------------------------------------------------------------


def _plugin_of(target: object, name: str, origin: str) -> Plugin:
    found = getattr(target, "plugin", None) if isinstance(target, ModuleType) else target
    if not isinstance(found, Plugin):
        raise PluginLoadError(f"{origin} has no Plugin object (a module attribute named 'plugin')")
    if found.name != name:
        raise PluginLoadError(f"{origin} holds plugin {found.name!r}, expected {name!r}")
    return found


def _module_files(module: ModuleType) -> list[Path]:
    """The source files of a module, or of every module in its package."""
    paths = getattr(module, "__path__", None)
    if paths:
        return sorted(file for folder in paths for file in Path(folder).rglob("*.py"))
    return [Path(module.__file__)] if getattr(module, "__file__", None) else []


def _import_checked(import_: Callable[[], ModuleType], origin: str) -> ModuleType:
    """Any failure of the module's top-level code, ``sys.exit`` and other BaseExceptions
    included (not Ctrl+C), disables the plugin instead of stopping the bot."""
    try:
        return import_()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise PluginLoadError(f"{origin}: import failed: {type(exc).__name__}: {exc}") from exc


def from_module(name: str, module_name: str, origin: str, attribute: str | None = None) -> PluginSource:
    def load() -> tuple[Plugin, list[Path]]:
        module = _import_checked(lambda: importlib.import_module(module_name), origin)
        target: object = module
        for part in attribute.split(".") if attribute else ():
            target = getattr(target, part, None)
        return _plugin_of(target, name, origin), _module_files(module)

    return PluginSource(name, origin, load)


def from_path(name: str, path: Path) -> PluginSource:
    """A local module file, or a package folder with an ``__init__.py``."""
    file = path / "__init__.py" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"plugin {name}: {path}: no such module (a .py file or a folder with __init__.py)")
    origin = f"path {path}"

    def load() -> tuple[Plugin, list[Path]]:
        module_name = f"personabot_local_plugins.{name}"
        spec = importlib.util.spec_from_file_location(
            module_name, file, submodule_search_locations=[str(path)] if path.is_dir() else None
        )
        if spec is None or spec.loader is None:
            raise PluginLoadError(f"{origin}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # relative imports and dataclasses look the module up

        def execute() -> ModuleType:
            try:
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
            return module

        _import_checked(execute, origin)
        return _plugin_of(module, name, origin), _module_files(module)

    return PluginSource(name, origin, load)


def installed() -> dict[str, PluginSource]:
    """Every plugin this environment offers by name: bundled examples, then entry points."""
    found = {name: from_module(name, module, "bundled example") for name, module in BUNDLED.items()}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        dist = f" ({point.dist.name} {point.dist.version})" if point.dist else ""
        origin = f"entry point {point.value}{dist}"
        found[point.name] = from_module(point.name, point.module, origin, point.attr)
    return found


def resolve(settings: BotSettings, section: PluginsSection) -> list[PluginSource]:
    """The enabled plugins' sources, in the order enabled. Unknown names are a ConfigError."""
    available = installed()
    where = str(settings.source or "bot file")
    sources = []
    for name in section.enabled:
        if name in section.paths:
            try:
                sources.append(from_path(name, settings.resolve_path(section.paths[name])))
            except ConfigError as error:
                raise ConfigError(f"{where}: plugins.paths.{name}: {error}") from None
        elif name in available:
            sources.append(available[name])
        else:
            raise ConfigError(
                f"{where}: plugins.enabled: plugin {name!r} is not installed"
                f" (installed: {', '.join(sorted(available)) or 'none'}; or give its file in [plugins.paths])"
            )
    return sources


def platform_imports(files: list[Path]) -> list[str]:
    """``file:line imports X`` for each import of a platform library: plugins stay platform-neutral."""
    found = []
    for file in files:
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue  # the import itself already succeeded; nothing to learn here
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for imported in names:
                if imported.split(".")[0] in PLATFORM_LIBRARIES:
                    found.append(f"{file}:{node.lineno} imports {imported}")
    return found
