"""`personabot init`: a scaffolded folder is a bot that runs; a non-empty folder is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def personabot(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PERSONABOT_BOT"}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args], capture_output=True, text=True, cwd=REPO, input=stdin, timeout=300,
        env={**environment, "PERSONABOT_DATA_DIR": str(cwd), **(env or {})},
    )


def files_in(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_init_makes_a_bot_that_ask_answers_with(tmp_path):
    folder = tmp_path / "mybot"
    made = personabot("init", str(folder), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert files_in(folder) == {"bot.toml", "personas/mybot.toml", ".env.example", ".gitignore", "README.md"}
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert f"personabot doctor --bot {folder / 'bot.toml'}" in readme and f"personabot chat --bot {folder / 'bot.toml'}" in readme
    answered = personabot("ask", "hello there", "--bot", str(folder / "bot.toml"), cwd=tmp_path)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip()  # the bundled model's words are its own; that it answers is the point
    assert (tmp_path / "mybot.db").is_file()  # [storage] left to the data folder


def test_platforms_and_backend_from_flags_name_their_variables(tmp_path):
    folder = tmp_path / "shop"
    made = personabot("init", str(folder), "--name", "shop-bot", "-p", "telegram", "-p", "discord", "--backend", "openai",
                      "--persona", "support", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    bot = tomllib.loads((folder / "bot.toml").read_text(encoding="utf-8"))
    assert bot["name"] == "shop-bot" and bot["personas"] == {"default": "shop-bot", "dirs": ["personas"]}
    assert bot["telegram"]["enabled"] and bot["discord"]["enabled"] and not bot["console"]["enabled"]
    assert bot["model"]["backend"] == "openai" and bot["model"]["api_key_env"] == "OPENAI_API_KEY"
    env = (folder / ".env.example").read_text(encoding="utf-8").splitlines()
    assert [line for line in env if not line.startswith("#")] == ["TELEGRAM_BOT_TOKEN=", "DISCORD_BOT_TOKEN=", "OPENAI_API_KEY="]
    persona = tomllib.loads((folder / "personas" / "shop-bot.toml").read_text(encoding="utf-8"))
    support = tomllib.loads((REPO / "personas" / "support.toml").read_text(encoding="utf-8"))
    assert persona["name"] == "shop-bot" and persona["system_prompt"] == support["system_prompt"]
    assert ".env" in (folder / ".gitignore").read_text(encoding="utf-8").split()
    assert f"personabot run --bot {folder / 'bot.toml'}" in made.stdout
    checked = personabot("persona", "validate", str(folder / "personas" / "shop-bot.toml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_a_folder_that_is_not_empty_is_refused_and_left_alone(tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    refused = personabot("init", str(folder), cwd=tmp_path)
    assert refused.returncode == 2 and "not empty; nothing written" in refused.stderr and "--force" in refused.stderr
    assert files_in(folder) == {"notes.txt"}
    forced = personabot("init", str(folder), "--force", "--backend", "scripted", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine" and (folder / "bot.toml").is_file()


def test_bad_choices_are_refused_before_anything_is_written(tmp_path):
    for args, message in (
        (("--name", "has space"), "--name 'has space'"),
        (("--platform", "irc"), "--platform 'irc': one of console, telegram, discord"),
        (("--persona", "pirate"), "--persona 'pirate': one of new,"),
        (("--backend", "gpt"), "--backend 'gpt'"),
    ):
        result = personabot("init", str(tmp_path / "x"), *args, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "x").exists()


def test_interactive_answers_and_a_chinese_folder_name(tmp_path):
    folder = tmp_path / "我的机器人"
    made = personabot("init", str(folder), "--interactive", stdin="客服\nhelper\ntelegram\ntutor\nscripted\n", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    bot = tomllib.loads((folder / "bot.toml").read_text(encoding="utf-8"))
    assert bot["name"] == "helper" and bot["telegram"]["enabled"] and bot["model"]["backend"] == "scripted"
    assert str(folder) in (folder / "README.md").read_text(encoding="utf-8")
    assert (folder / "personas" / "helper.toml").is_file()
