"""Several bot files in one process: one load per model shared by the bots naming it, both
answering through their own Telegram (two Bot API fakes); two files naming one database are
refused before anything loads, naming both files; one stop drains them all."""

from __future__ import annotations

import asyncio
import logging

import pytest
from typer.testing import CliRunner

from bots.cli import adapter_starters, app as cli, web_console
from bots.multi import ModelRegistry, run_bots
from core.generation.scripted import ScriptedGenerator
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, telegram_settings, until


def bot_file(folder, name: str, database: str) -> str:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\n[model]\nbackend = "scripted"\nreplies = ["hi"]\n[storage]\npath = "{database}"\n'
        "[console]\nenabled = false\n[telegram]\nenabled = true\ntoken_env = \"PB_TEST_TOKEN\"\n",
        encoding="utf-8",
    )
    return str(path)


def test_two_files_naming_one_database_are_refused_with_both_names(tmp_path, monkeypatch):
    monkeypatch.setenv("PB_TEST_TOKEN", "123:abc")
    first, second = bot_file(tmp_path, "alpha", "shared.db"), bot_file(tmp_path, "beta", "shared.db")
    result = CliRunner().invoke(cli, ["run", first, second])
    assert result.exit_code == 2
    assert first in result.output and second in result.output and "same database" in result.output
    assert not (tmp_path / "shared.db").exists()  # refused before anything opened


async def test_bots_naming_one_model_share_one_load_and_close_it_once():
    loads, closed = [], []

    class Counted(ScriptedGenerator):
        async def aclose(self) -> None:
            closed.append(self)

    async def load(settings):
        loads.append(settings.name)
        return Counted(["hi"])

    registry = ModelRegistry(load)
    settings = telegram_settings("http://127.0.0.1:9")
    a = await registry.handle(settings.model_copy(update={"name": "a"}))
    b = await registry.handle(settings.model_copy(update={"name": "b"}))
    other = settings.model_copy(update={"model": settings.model.model_copy(update={"replies": ("other",)})})
    c = await registry.handle(other)
    assert loads == ["a", "test"] and registry.loaded == 2
    await a.aclose()
    await a.aclose()  # a second close of one handle changes nothing
    assert closed == []
    await b.aclose()
    await c.aclose()
    assert len(closed) == 2 and registry.loaded == 0


async def test_two_bots_in_one_process_both_answer_with_one_model_load(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("PERSONABOT_DATA_DIR", str(tmp_path))  # each bot's own database, fresh
    first, second = await FakeBotAPI().start(), await FakeBotAPI().start()
    try:
        bots = [  # no features: the embedder would load too, and this test is about the generator
            telegram_settings(fake).model_copy(update={"name": name, "features": ()}) for fake, name in ((first, "alpha"), (second, "beta"))
        ]
        stop = asyncio.Event()
        registry = ModelRegistry()
        caplog.set_level(logging.INFO, logger="bots.multi")
        task = asyncio.create_task(run_bots(bots, adapter_starters, web_console, registry, stop))
        await until(first, lambda: first.calls_of("getUpdates"), task)
        await until(second, lambda: second.calls_of("getUpdates"), task)
        first.user_message("hello alpha", chat_id=61)
        second.user_message("hello beta", chat_id=62)
        await until(first, lambda: first.texts(61), task)
        await until(second, lambda: second.texts(62), task)
        assert registry.loaded == 1
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        await first.close()
        await second.close()
    loaded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loading the model")]
    assert loaded == ["loading the model of alpha"] or loaded == ["loading the model of beta"]
    assert any("shares the model" in r.getMessage() for r in caplog.records)
    assert first.texts(61) and second.texts(62) and registry.loaded == 0
