"""Discord sharding against the gateway fake: two `personabot run` processes with one
shard each (each guild answered once, by the process that owns its shard; /readyz turns
200 once the process's shard is ready), and one process running every shard Discord
recommends (readiness follows each shard through a disconnect and RESUME).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from adapters.discord.bot import DiscordBot, run_bot
from bots.app_factory import bot_app
from core.generation.scripted import ScriptedGenerator
from core.http.health import Health
from core.storage.sqlite import SQLiteStore
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import discord_settings
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]
USER = 700000000000000002


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bot_file(tmp_path: Path, fake: FakeDiscord | str, shard: int, port: int) -> Path:
    base_url = fake if isinstance(fake, str) else fake.base_url
    path = tmp_path / f"shard{shard}.toml"
    path.write_text(
        f"""
name = "sharded{shard}"
features = []
[model]
backend = "scripted"
replies = ["answer from the process of shard {shard} 分片"]
[storage]
path = "{tmp_path / f'shard{shard}.db'}"
[http]
enabled = true
port = {port}
[console]
enabled = false
[discord]
enabled = true
api_base_url = "{base_url}"
edit_interval = 0.01
shard_count = 2
shard_ids = [{shard}]
""",
        encoding="utf-8",
    )
    return path


async def ready(port: int, process: asyncio.subprocess.Process) -> None:
    """Poll /readyz until 200 (the process is up and its shard connected)."""
    async with httpx.AsyncClient() as client:
        while process.returncode is None:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # polling an external process; no event to wait on
    raise AssertionError(f"the bot process exited with {process.returncode} before it was ready")


async def test_two_processes_each_answer_the_guilds_of_their_own_shard(tmp_path):
    async with FakeDiscord(shards=2) as fake:
        channels = {shard: fake.add_channel(fake.add_guild(shard=shard)) for shard in (0, 1)}
        ports = {shard: free_port() for shard in (0, 1)}
        env = dict(os.environ, DISCORD_BOT_TOKEN=fake.token)
        processes = {
            shard: await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bots.cli", "run", str(bot_file(tmp_path, fake, shard, ports[shard])),
                cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            for shard in (0, 1)
        }
        try:
            await asyncio.wait_for(asyncio.gather(*(ready(ports[s], processes[s]) for s in (0, 1))), 90)
            assert sorted(payload["shard"] for payload in fake.identify_payloads) == [[0, 2], [1, 2]]
            for shard, channel in channels.items():
                await fake.dispatch(
                    "MESSAGE_CREATE",
                    fake.message(channel, USER, f"<@{fake.bot_id}> hello shard {shard}", mentions_bot=True),
                )
            await fake.wait_for(lambda: all(fake.texts_in(channel) for channel in channels.values()), 30)
        finally:
            for process in processes.values():
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(process.wait(), 30) for process in processes.values()]
        assert codes == [0, 0], [(await p.stderr.read()).decode()[-2000:] for p in processes.values()]  # type: ignore[union-attr]
        # Both processes stopped (in-flight replies drained): nothing more can arrive.
        for shard, channel in channels.items():
            assert fake.texts_in(channel) == [f"answer from the process of shard {shard} 分片"]


def test_shard_ids_need_a_count_and_must_lie_below_it():
    from pydantic import ValidationError

    from adapters.discord.settings import DiscordSettings

    for section, problem in (
        ({"shard_ids": [0]}, "set shard_count too"),
        ({"shard_count": 2, "shard_ids": [2]}, r"\[2\]: shard ids go from 0 to below shard_count \(2\)"),
        ({"shard_count": 2, "shard_ids": [0, 0]}, "listed twice"),
        ({"shard_count": 2, "shard_ids": []}, "at least one"),
    ):
        with pytest.raises(ValidationError, match=problem) as caught:
            DiscordSettings.model_validate({"enabled": True, **section})
        assert caught.value.errors()[0]["loc"] == ("shard_ids",)
    assert DiscordSettings.model_validate({"shard_count": 4, "shard_ids": [2, 3]}).shard_ids == (2, 3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--shard-count", "2", "--shard-ids", "5"], "shard_ids: Value error, [5]: shard ids go from 0 to below shard_count (2)"),
        (["--shard-ids", "zero"], "--shard-ids: 'zero' is not a comma-separated list"),
    ],
)
def test_bad_shard_options_exit_2_naming_the_option_before_anything_starts(tmp_path, options, message):
    import subprocess

    path = bot_file(tmp_path, "http://127.0.0.1:9", 0, free_port())  # nothing is contacted
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "run", str(path), *options],
        cwd=REPO, env=dict(os.environ, DISCORD_BOT_TOKEN="unused"), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


class RecordingHealth(Health):
    def __init__(self) -> None:
        super().__init__()
        self.reports: list[str | None] = []
        self.changed = asyncio.Event()

    def report(self, component: str, problem: str | None) -> None:
        super().report(component, problem)
        self.reports.append(problem)
        self.changed.set()

    async def until(self, problem: str | None) -> None:
        while not (self.reports and self.reports[-1] == problem):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 15)


async def test_one_process_runs_all_recommended_shards_and_readiness_follows_each(monkeypatch):
    async with FakeDiscord(shards=2) as fake:
        channels = {shard: fake.add_channel(fake.add_guild(shard=shard)) for shard in (0, 1)}
        monkeypatch.setenv("DISCORD_BOT_TOKEN", fake.token)
        settings = make_settings(discord=discord_settings(fake), model={"backend": "scripted"})
        health = RecordingHealth()
        async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["hi 你好"]), features=[]) as bot:
            client = DiscordBot(bot, guild_ready_timeout=0.01, identify_spacing=0.0, health=health)
            stop = asyncio.Event()
            task = asyncio.create_task(run_bot(client, stop))
            try:
                await health.until(None)
                assert sorted(payload["shard"] for payload in fake.identify_payloads) == [[0, 2], [1, 2]]
                for channel in channels.values():
                    await fake.dispatch("MESSAGE_CREATE", fake.message(channel, USER, f"<@{fake.bot_id}> hi", mentions_bot=True))
                await fake.wait_for(lambda: all(fake.texts_in(channel) == ["hi 你好"] for channel in channels.values()))
                await fake.drop_connection(shard=1)
                await health.until("shards not connected: [1]")
                await health.until(None)  # reconnected and resumed
                assert fake.resumes == 1
            finally:
                stop.set()
                await asyncio.wait_for(task, 15)
    assert health.reports[0] == "connecting" and health.reports[-1] == "stopped"
