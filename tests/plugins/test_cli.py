"""`personabot plugins list`, and the promise that plugins stay platform-neutral."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import typer
from typer.testing import CliRunner

from bots import plugins_cli
from tests.plugins.helpers import write_plugin


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """personabot"""

    plugins_cli.register(app)
    return app


def test_list_shows_installed_plugins_with_their_commands():
    result = CliRunner().invoke(cli(), ["plugins", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Installed plugins:"
    assert any(line.split()[:3] == ["knowledge", "bundled", "example"] for line in lines)
    assert "/kb search QUERY…" in result.output and "/admin kb reload" in result.output
    assert "No plugins enabled in" in result.output  # the demo bot


def test_list_checks_the_plugins_a_bot_file_enables(tmp_path):
    write_plugin(tmp_path, "hello", """
        from core.plugins import Plugin
        plugin = Plugin("hello", description="Greets")

        @plugin.command("hello", "Say hello")
        async def hello(turn):
            return "hi"
    """)
    bot = tmp_path / "bot.toml"
    bot.write_text(textwrap.dedent("""
        name = "listed"
        [plugins]
        enabled = ["hello", "reminders"]
        [plugins.paths]
        hello = "hello.py"
    """), encoding="utf-8")
    result = CliRunner().invoke(cli(), ["plugins", "list", "--bot", str(bot)])
    assert result.exit_code == 0, result.output
    enabled = result.output.split(f"Enabled in {bot}:")[1]
    assert "hello        path" in enabled and "/hello" in enabled
    assert enabled.count("config ok") == 2


def test_list_exits_2_on_a_missing_plugin_or_a_bad_config(tmp_path):
    bot = tmp_path / "bot.toml"
    bot.write_text('[plugins]\nenabled = ["nosuch", "reminders"]\n[plugins.reminders]\ntimezone = "Moon/Base"\n')
    result = CliRunner().invoke(cli(), ["plugins", "list", "--bot", str(bot)])
    assert result.exit_code == 2
    assert "nosuch" in result.output and "not installed" in result.output
    assert "plugins.reminders.timezone" in result.output and "(plugin reminders)" in result.output


def test_the_example_plugins_import_no_platform_library():
    code = (
        "import sys, plugins.knowledge, plugins.reminders,"
        " plugins.lessons, plugins.daily, core.plugins.manager;"
        "print(sorted(m for m in ('discord', 'telegram', 'adapters', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
