"""One CLI: every bot command takes --bot with the same default, flags show as flags,
`config show` names the database in use, `persona import` says who reads what it wrote."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOT_COMMANDS = {
    "chat", "ask", "run", "config show", "users export", "users forget", "plugins list", "discord sync",
    "doctor", "healthcheck", "web", "web link",
}
WALK = """
import json, typer
from typer.testing import CliRunner
from bots.cli import app, _register_optional_commands
_register_optional_commands()
root = typer.main.get_command(app)
found = {}
def walk(command, path):
    if path:
        bot = [p for p in command.params if "--bot" in getattr(p, "opts", [])]
        found[" ".join(path)] = {
            "help": CliRunner().invoke(app, [*path, "--help"], terminal_width=100).output,
            "bot": [{"envvar": p.envvar, "required": p.required, "help": p.help} for p in bot],
        }
    for name, sub in getattr(command, "commands", {}).items():
        walk(sub, [*path, name])
walk(root, [])
print(json.dumps(found))
"""


def personabot(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PERSONABOT_BOT"}
    return subprocess.run([sys.executable, "-m", "bots.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**environment, "PERSONABOT_DATA_DIR": str(cwd), **(env or {})})


def commands() -> dict[str, dict]:
    result = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_bot_command_takes_the_same_bot_option_and_flags_render_as_flags():
    found = commands()
    assert BOT_COMMANDS <= set(found)
    bot_options = {path: info["bot"] for path, info in found.items() if info["bot"]}
    assert BOT_COMMANDS <= set(bot_options), BOT_COMMANDS - set(bot_options)
    for path, options in bot_options.items():
        (option,) = options
        assert option["envvar"] == "PERSONABOT_BOT" and not option["required"], path
    assert len({options[0]["help"] for path, options in bot_options.items() if path in BOT_COMMANDS}) == 1
    for path, info in found.items():
        assert "<bool>" not in info["help"], f"personabot {path} --help:\n{info['help']}"
    assert "when [http] is enabled" in found["healthcheck"]["help"]  # brackets are text, not Rich markup
    chat = found["chat"]["help"]
    assert "--verbose" in chat and "--no-verbose" in chat
    assert any(line.split() == ["│", "--help", "Show", "this", "message", "and", "exit.", "│"] for line in chat.splitlines())


def test_users_export_without_bot_works_on_the_demo_bot(tmp_path):
    from core.storage.sqlite import SQLiteStore

    async def demo_user() -> None:
        async with SQLiteStore(tmp_path / "demo.db") as store:
            await store.touch_user("console:ana", "Ana")

    asyncio.run(demo_user())
    result = personabot("users", "export", "console:ana", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user_id"] == "console:ana"


def test_personabot_bot_sets_the_default_and_config_show_names_the_database(tmp_path):
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "envbot"\n[model]\nbackend = "scripted"\n', encoding="utf-8")
    shown = json.loads(personabot("config", "show", cwd=tmp_path, env={"PERSONABOT_BOT": str(bot)}).stdout)
    assert shown["name"] == "envbot" and shown["storage"]["database"] == str(tmp_path / "envbot.db")
    bot.write_text('name = "envbot"\n[storage]\npath = "data/其他.db"\n', encoding="utf-8")
    shown = json.loads(personabot("config", "show", "--bot", str(bot), cwd=tmp_path).stdout)
    assert shown["storage"]["database"] == str(tmp_path / "data" / "其他.db")
    bot.write_text('name = "envbot"\n[storage]\nurl = "postgresql://bot:hunter2@db:5432/bots"\n', encoding="utf-8")
    result = personabot("config", "show", "--bot", str(bot), cwd=tmp_path)
    assert json.loads(result.stdout)["storage"]["database"] == "postgresql://bot@db:5432/bots" and "hunter2" not in result.stdout


CARD = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    "name": "Captain Mira", "description": "A starship captain.", "personality": "brave", "scenario": "",
    "first_mes": "Welcome aboard!", "mes_example": "", "creator_notes": "", "system_prompt": "", "tags": []}}


def test_persona_import_says_where_it_wrote_and_how_a_bot_reads_it(tmp_path):
    card = tmp_path / "mira.json"
    card.write_text(json.dumps(CARD), encoding="utf-8")
    alone = personabot("persona", "import", str(card), "--out", str(tmp_path / "cards"), cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    written = next((tmp_path / "cards").glob("*.toml"))
    assert f"wrote {written}" in alone.stdout and "no bot reads" in alone.stdout and "[personas] dirs" in alone.stdout
    (tmp_path / "mybot" / "personas").mkdir(parents=True)
    bot = tmp_path / "mybot" / "bot.toml"
    bot.write_text('name = "mybot"\n[personas]\ndirs = ["personas"]\n', encoding="utf-8")
    into = personabot("persona", "import", str(card), "--bot", str(bot), cwd=tmp_path)
    assert into.returncode == 0, into.stderr
    assert f"wrote {tmp_path / 'mybot' / 'personas' / written.name}" in into.stdout
    assert f"{bot} reads it: /persona {written.stem} switches to it" in into.stdout


def test_persona_import_says_how_the_knowledge_plugin_reads_the_lorebook(tmp_path):
    card = tmp_path / "mira.json"
    book = {"entries": [{"keys": ["warp"], "content": "The warp drive hums.", "enabled": True}]}
    card.write_text(json.dumps({"data": CARD["data"] | {"character_book": book}}), encoding="utf-8")
    (tmp_path / "mybot" / "personas").mkdir(parents=True)
    bot = tmp_path / "mybot" / "bot.toml"
    bot.write_text('name = "mybot"\n[personas]\ndirs = ["personas"]\n', encoding="utf-8")
    result = personabot("persona", "import", str(card), "--bot", str(bot), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mybot" / "personas" / "knowledge" / "captain-mira.md").is_file()
    assert '[plugins.knowledge] folder = "personas/knowledge"' in result.stdout
