"""The CLI end to end, in subprocesses, as a user runs it."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.events import ConversationKey

SCRIPTED_BOT = """
name = "clitest"
[model]
backend = "scripted"
replies = ["Hi! Nice to meet you."]
[storage]
path = "clitest.db"
"""


def personabot(*args: str, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PERSONABOT_DATA_DIR": str(cwd), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


@pytest.fixture
def bot_file(tmp_path: Path) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(SCRIPTED_BOT, encoding="utf-8")
    return path


def test_ask_replies_and_history_persists_between_calls(tmp_path, bot_file):
    first = personabot("ask", "hello 你好", "--bot", str(bot_file), "--user", "ana", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "Hi! Nice to meet you."
    assert personabot("ask", "again", "--bot", str(bot_file), "--user", "ana", cwd=tmp_path).returncode == 0

    async def stored():
        from core.storage.sqlite import SQLiteStore

        async with SQLiteStore(tmp_path / "clitest.db") as store:
            conversation = await store.active_conversation(ConversationKey("console", "ana"))
            return [(m.role, m.text) for m in await store.history(conversation.id)]

    assert asyncio.run(stored()) == [
        ("user", "hello 你好"),
        ("assistant", "Hi! Nice to meet you."),
        ("user", "again"),
        ("assistant", "Hi! Nice to meet you."),
    ]


def test_malformed_bot_file_exits_2_naming_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[limits]\nmax_input_chars = -5\n', encoding="utf-8")
    result = personabot("ask", "hi", "--bot", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad}: limits.max_input_chars" in result.stderr and "Traceback" not in result.stderr


def test_broken_toml_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[model\n", encoding="utf-8")
    result = personabot("ask", "hi", "--bot", str(bad), cwd=tmp_path)
    assert result.returncode == 2 and "invalid TOML" in result.stderr and "Traceback" not in result.stderr


def test_unknown_persona_in_bot_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bot.toml"
    bad.write_text(SCRIPTED_BOT + '\n[personas]\ndefault = "pirate"\n', encoding="utf-8")
    result = personabot("ask", "hi", "--bot", str(bad), cwd=tmp_path)
    assert result.returncode == 2 and "personas.default" in result.stderr


def test_persona_validate_names_file_and_field(tmp_path):
    good = Path(__file__).resolve().parents[2] / "personas" / "tutor.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "Bad Name"\ndescription = "d"\nsystem_prompt = "s"\n', encoding="utf-8")
    result = personabot("persona", "validate", str(good), str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"ok: {good}" in result.stdout
    assert f"{bad}: name" in result.stderr and f"{bad}: greeting: Field required" in result.stderr


def test_run_without_any_adapter_is_refused(tmp_path):
    bot = tmp_path / "bot.toml"
    bot.write_text(SCRIPTED_BOT + "\n[console]\nenabled = false\n", encoding="utf-8")
    result = personabot("run", str(bot), cwd=tmp_path)
    assert result.returncode == 2 and "no adapter enabled" in result.stderr


def test_every_command_has_help(tmp_path):
    for command in (["chat"], ["ask"], ["run"], ["persona", "validate"], ["config", "show"]):
        result = personabot(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "Usage" in result.stdout


def test_chat_streams_replies_and_quits_on_eof(tmp_path, bot_file):
    env = {**os.environ, "PERSONABOT_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "chat", "--bot", str(bot_file)],
        input="hello\n/persona support\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "bot: Hi! Nice to meet you." in result.stdout
    assert "Now talking as Support agent." in result.stdout


def test_a_missing_model_folder_is_named_without_a_traceback(tmp_path):
    bot = tmp_path / "bot.toml"
    missing = tmp_path / "no-such-model"
    bot.write_text(f'name = "m"\n[model]\npath = "{missing.as_posix()}"\n[personalization]\nenabled = false\n', "utf-8")
    result = personabot("ask", "hi", "--bot", str(bot), cwd=tmp_path)
    assert result.returncode == 1
    assert str(missing) in result.stderr and "Traceback" not in result.stderr
