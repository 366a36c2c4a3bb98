"""`personabot run FILE` with a [telegram] section: serves, stops cleanly on SIGTERM,
and exits 2 with a clear message when the token is rejected (never printing it)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from adapters.console.settings import ConsoleSettings
from adapters.telegram.settings import TelegramSettings
from pathlib import Path

import pytest

from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fake():
    server = await FakeBotAPI().start()
    yield server
    await server.close()


def bot_file(tmp_path: Path, fake: FakeBotAPI) -> Path:
    path = tmp_path / "telegram.toml"
    path.write_text(
        f"""
name = "tgcli"
[model]
backend = "scripted"
replies = ["Hi from the CLI, 你好"]
[storage]
path = "{tmp_path / 'tgcli.db'}"
[console]
enabled = false
[telegram]
enabled = true
token_env = "{TOKEN_ENV}"
api_base_url = "{fake.base_url}"
private_streaming = "final"
""",
        encoding="utf-8",
    )
    return path


async def start(path: Path, token: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, **{TOKEN_ENV: token})
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "run", str(path), cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


async def test_run_serves_telegram_and_stops_on_sigterm(fake, tmp_path):
    process = await start(bot_file(tmp_path, fake), TOKEN)
    try:
        await fake.wait_for(lambda: fake.calls_of("getUpdates") or process.returncode is not None, timeout=60)
        fake.user_message("hello", chat_id=555)
        await fake.wait_for(lambda: fake.texts(555) == ["Hi from the CLI, 你好"], timeout=30)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()
    assert TOKEN.encode() not in output


async def test_run_exits_2_when_the_token_is_rejected(fake, tmp_path):
    wrong = "42:wrong-TOKEN_value"
    process = await start(bot_file(tmp_path, fake), wrong)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert b"rejected the token" in output and TOKEN_ENV.encode() in output
    assert wrong.encode() not in output


def test_the_example_bot_file_is_valid():
    from core.settings import load_bot_settings

    settings = load_bot_settings(REPO / "bots" / "telegram.toml")
    assert settings.platform(TelegramSettings).enabled and settings.platform(TelegramSettings).token_env == "TELEGRAM_BOT_TOKEN"
    assert not settings.platform(ConsoleSettings).enabled
