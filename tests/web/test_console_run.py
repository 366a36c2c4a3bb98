"""The console inside a running bot: mounted on core.http's one server, or on its own
port; live figures from the process's metrics, readiness and generator."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import typer

from bots.app_factory import bot_app
from core.generation.scripted import ScriptedGenerator
from core.http.health import Health
from core.http.metrics import Metrics
from core.http.server import HttpServer
from core.http.settings import HttpSettings
from core.settings import BotSettings
from core.storage import SQLiteStore
from core.web.live import MetricsLive, histogram_quantile, percentile
from core.web.serve import RunConsole

TOKEN = "run-token"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> BotSettings:
    monkeypatch.setenv("PERSONABOT_WEB_TOKEN", TOKEN)
    return BotSettings.model_validate({
        "name": "runweb", "model": {"backend": "scripted"}, "storage": {"path": str(tmp_path / "bot.db")},
        "web": {"enabled": True, "port": 0},
    }).model_copy(update={"source": tmp_path / "bot.toml"})


async def _signed_in_page(base: str, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # an IP host
        async with session.post(f"{base}/console/signin", data={"token": TOKEN}, allow_redirects=False) as response:
            assert response.status == 303
        async with session.get(f"{base}/console/{path}") as response:
            return response.status, await response.text()


async def test_mounted_on_the_operator_server_beside_healthz(settings):
    metrics = Metrics()
    health = Health(metrics)
    server = HttpServer(HttpSettings(enabled=True, port=0), metrics, health)
    console = RunConsole(settings, server=server)
    app = bot_app(settings, generator=ScriptedGenerator(["hi"]), features=[])
    async with server, console:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/console/signin") as response:
                assert response.status == 503  # the bot is not open yet
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200
        async with app as running:
            metrics.time_to_first_token.observe(0.2)
            metrics.time_to_first_token.observe(0.4)
            metrics.generation_queue_depth.set(3)
            health.started()
            console.attach(running, metrics=metrics, health=health)
            status, page = await _signed_in_page(base, "")
    assert status == 200
    queue = re.search(r"Generation queue depth</h2><p class=\"big\">(\d+)", page)
    assert queue and queue.group(1) == "3"
    assert "Time to first token" in page and "process: ready" in page
    assert "model backend: scripted" in page


async def test_on_its_own_port_without_the_operator_server(settings):
    console = RunConsole(settings)
    app = bot_app(settings, generator=ScriptedGenerator(["hi"]), features=[])
    async with console, app as running:
        console.attach(running)
        base = console._own.url.removesuffix("/console/")
        status, page = await _signed_in_page(base, "personas")
    assert status == 200 and "companion" in page


async def test_live_figures_from_a_registry():
    metrics = Metrics()
    for seconds in (0.02, 0.2, 0.3, 3.0):
        metrics.time_to_first_token.observe(seconds)
    metrics.busy_replies.inc(2)
    figures = await MetricsLive(metrics.registry).figures()
    assert figures.busy_replies == 2 and figures.queue_depth == 0
    assert 0.1 <= figures.ttft_p50 <= 0.25 and 2.0 <= figures.ttft_p95 <= 4.0
    assert (await MetricsLive(None).figures()).ttft_p50 is None


def test_quantiles():
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and percentile([1.0, 2.0], 0.95) == 2.0
    buckets = [(0.1, 0.0), (0.5, 10.0), (1.0, 10.0), (float("inf"), 10.0)]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.3)
    assert histogram_quantile([(1.0, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert histogram_quantile([(1.0, 0.0), (float("inf"), 4.0)], 0.5) == 1.0  # beyond the last bound


async def test_moderation_actions_reach_the_console(settings):
    """A refused message and a redacted reply are audited (rules, action, a hash, never the
    text) by the safety feature, and listed on the console's moderation page."""
    from core.safety import setup_safety
    from tests.conftest import make_event
    from tests.fakes import RecordingOutbox

    safety = {"moderation": {"words": ["forbidden", "badword"], "private": {"input": "refuse", "output": "redact"}}}
    moderated = settings.model_copy(update={"safety": safety})
    app = bot_app(moderated, generator=ScriptedGenerator(["a badword reply"]), features=[setup_safety])
    console = RunConsole(moderated)
    async with console, app as running:
        console.attach(running)
        await running.dispatcher.feed(make_event("a forbidden thing"), RecordingOutbox())
        await running.dispatcher.feed(make_event("hello"), RecordingOutbox())
        entries = await running.store.find_audit(action="moderation")
        status, page = await _signed_in_page(console._own.url.removesuffix("/console/"), "moderation")
    assert [(e.action, e.detail["action"], e.detail["rules"]) for e in entries] == [
        ("moderation output", "redact", ["words"]), ("moderation input", "refuse", ["words"]),
    ]
    assert all("forbidden" not in str(e.detail) and "badword" not in str(e.detail) for e in entries)
    assert status == 200 and "moderation input → refuse" in page and "moderation output → redact" in page


async def test_the_link_command_prints_a_link_the_running_console_accepts(tmp_path, monkeypatch):
    from aiohttp.test_utils import TestClient, TestServer
    from typer.testing import CliRunner

    from bots import web_cli
    from core.settings import load_bot_settings
    from core.web.app import standalone_app
    from core.web.console import ConsoleParts
    from core.web.serve import console_for

    monkeypatch.delenv("PERSONABOT_WEB_TOKEN", raising=False)
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "linkbot"\n[model]\nbackend = "scripted"\n[storage]\npath = "link.db"\n'
                   '[web]\nenabled = true\nport = 9911\n', encoding="utf-8")
    cli = typer.Typer()
    web_cli.register(cli)
    printed = CliRunner().invoke(cli, ["web", "link", "--bot", str(bot)])
    assert printed.exit_code == 0, printed.output
    link = re.search(r"http://127\.0\.0\.1:9911/console/link\?t=(\S+)", printed.output)
    assert link, printed.output
    assert (tmp_path / "link.console-key").stat().st_mode & 0o777 == 0o600
    settings = load_bot_settings(bot)
    app = bot_app(settings, generator=ScriptedGenerator(["hi"]), features=[])
    async with app as running:
        console = console_for(settings, ConsoleParts(running.store, running.personas))
        async with TestClient(TestServer(standalone_app(console))) as client:
            page = await (await client.get(f"/console/link?t={link.group(1)}")).text()
            assert "one-time link" in page and 'name="token"' not in page
            used = await client.post("/console/link", data={"t": link.group(1)}, allow_redirects=False)
            assert used.status == 303 and "pb_console" in used.cookies
            assert (await client.post("/console/signin", data={"token": "x"})).status == 400  # no token variable


def test_personabot_web_serves_the_bots_database_until_sigterm(tmp_path):
    async def make_db() -> None:
        async with SQLiteStore(tmp_path / "web.db") as store:
            await store.touch_user("telegram:77", "Zoë 小明")

    asyncio.run(make_db())
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "webcli"\n[model]\nbackend = "scripted"\n[storage]\npath = "web.db"\n', encoding="utf-8")
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "web", "--bot", str(bot), "--port", "0"],
        cwd=root, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(root), "PERSONABOT_WEB_TOKEN": TOKEN},
    )
    try:
        for line in child.stderr:  # the server says where it listens once it does
            found = re.search(r"console: (http://\S+/console/)", line)
            if found:
                break
        assert found, "personabot web never said where it listens"

        async def visit() -> tuple[int, str]:
            return await _signed_in_page(found.group(1).removesuffix("/console/"), "users?q=Zo")

        status, page = asyncio.run(visit())
        assert status == 200 and "Zoë 小明" in page
    finally:
        child.send_signal(signal.SIGTERM)
        code = child.wait(30)
    assert code == 0
