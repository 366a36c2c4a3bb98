"""`personabot plugins list [--bot FILE]`: installed plugins, and the ones a bot file enables.

Plugins are imported (to read their commands) but never set up: nothing connects,
nothing is written. Exit code 2 when an enabled plugin is missing or misconfigured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from bots.common import BotOption, bot_file
from core.errors import ConfigError
from core.settings import load_bot_settings

if TYPE_CHECKING:
    from core.plugins.api import Plugin
    from core.plugins.loader import PluginSource

plugins_app = typer.Typer(help="Plugins: extensions of a bot.", no_args_is_help=True)


def _describe(source: "PluginSource") -> tuple["Plugin | None", str, list[str], str]:
    """(plugin, description, commands, problem) of a plugin source, importing it once."""
    from core.plugins.loader import PluginLoadError, platform_imports

    try:
        plugin, files = source.load()
    except PluginLoadError as exc:
        return None, "", [], f"broken: {exc}"
    problems = plugin.contract_problems() + [f"imports a platform library: {line}" for line in platform_imports(files)]
    commands = [spec.usage for spec in plugin.commands]
    return plugin, plugin.description, commands, "; ".join(f"refused: {problem}" for problem in problems)


def _show(name: str, origin: str, description: str, commands: list[str], note: str) -> None:
    typer.echo(f"  {name:<12} {origin}" + (f" — {description}" if description else ""))
    for command in commands:
        typer.echo(f"  {'':<12}   {command}")
    if note:
        typer.secho(f"  {'':<12}   {note}", fg=typer.colors.RED if note.startswith(("broken", "refused", "error")) else None)


@plugins_app.command("list")
def list_plugins(
    bot: BotOption = None,
) -> None:
    """Show installed plugins and the ones the bot file enables, with their commands."""
    from core.plugins.loader import from_path, installed, read_section, validate_config

    available = installed()
    typer.echo("Installed plugins:")
    for name, source in sorted(available.items()):
        _, description, commands, problem = _describe(source)
        _show(name, source.origin, description, commands, problem)
    path = bot_file(bot)
    try:
        settings = load_bot_settings(path)
        section = read_section(settings)
    except ConfigError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    typer.echo(f"\nEnabled in {path}:" if section.enabled else f"\nNo plugins enabled in {path}.")
    failed = False
    for name in section.enabled:
        try:
            source = from_path(name, settings.resolve_path(section.paths[name])) if name in section.paths else available[name]
        except (ConfigError, KeyError) as exc:
            failed = True
            problem = str(exc) if isinstance(exc, ConfigError) else "not installed"
            _show(name, "", "", [], f"error: {problem}")
            continue
        plugin, description, commands, problem = _describe(source)
        if plugin is not None and not problem:
            try:
                validate_config(plugin, section.configs().get(name, {}), str(settings.source))
            except ConfigError as exc:
                failed, problem = True, f"error: {exc}"
        _show(name, source.origin, description, commands, problem or "config ok")
    if failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
