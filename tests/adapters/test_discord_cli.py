"""`personabot discord sync` against the fake Discord API (run in a thread: the CLI owns its loop)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import typer
from typer.testing import CliRunner

from bots import discord_cli
from tests.adapters.discord_fake_server import FakeDiscord


@pytest.fixture
def fake():
    """A FakeDiscord served from its own event loop in a background thread."""
    loop = asyncio.new_event_loop()
    server = FakeDiscord()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.__aenter__())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.__aexit__(None, None, None))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield server
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    discord_cli.register(app)
    return app


def bot_file(tmp_path, fake: FakeDiscord, extra: str = "") -> str:
    path = tmp_path / "bot.toml"
    path.write_text(
        f"""name = "syncbot"
[model]
backend = "scripted"
[discord]
enabled = true
api_base_url = "{fake.base_url}"
{extra}
""",
        encoding="utf-8",
    )
    return str(path)


def test_sync_publishes_to_the_guilds_of_the_bot_file(tmp_path, fake, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_BOT_TOKEN", fake.token)
    result = CliRunner().invoke(cli, ["discord", "sync", "--bot", bot_file(tmp_path, fake, 'sync_guilds = ["123", "456"]')])
    assert result.exit_code == 0, result.output
    assert set(fake.synced) == {"123", "456"}
    names = {command["name"] for command in fake.synced["123"]}
    assert {"help", "persona", "reset", "admin"} <= names
    assert f"guild 123: {len(names)} commands" in result.output


def test_sync_global_and_clear(tmp_path, fake, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_BOT_TOKEN", fake.token)
    path = bot_file(tmp_path, fake)
    assert CliRunner().invoke(cli, ["discord", "sync", "--bot", path]).exit_code == 0
    assert fake.synced["global"]
    result = CliRunner().invoke(cli, ["discord", "sync", "--bot", path, "--guild", "789", "--clear"])
    assert result.exit_code == 0, result.output
    assert fake.synced["789"] == [] and fake.synced["global"]


def test_a_rejected_token_exits_2_naming_the_variable_not_the_value(tmp_path, fake, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "wrong-secret-value")
    result = CliRunner().invoke(cli, ["discord", "sync", "--bot", bot_file(tmp_path, fake)])
    assert result.exit_code == 2
    assert "DISCORD_BOT_TOKEN" in result.output and "wrong-secret-value" not in result.output
    assert fake.synced == {}


def test_dry_run_prints_the_commands_without_a_token(tmp_path, fake, cli, monkeypatch):
    monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["discord", "sync", "--bot", bot_file(tmp_path, fake), "--dry-run"])
    assert result.exit_code == 0, result.output
    commands = {command["name"]: command for command in json.loads(result.output)}
    assert int(commands["admin"]["default_member_permissions"]) == 1 << 5
    assert fake.calls == []


def test_a_bad_guild_id_exits_2(tmp_path, fake, cli):
    result = CliRunner().invoke(cli, ["discord", "sync", "--bot", bot_file(tmp_path, fake), "--guild", "general"])
    assert result.exit_code == 2 and "general" in result.output
