"""Configuration errors are found before any model loads (exit 2, field named)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import bots.cli
import core.bootstrap
from bots.app_factory import bot_app
from core.errors import ConfigError
from tests.conftest import make_settings


@pytest.fixture
def model_loads(monkeypatch) -> list[str]:
    """Records every model or embedder load instead of doing it."""
    loads: list[str] = []

    async def build_generator(settings):
        loads.append("generator")
        raise AssertionError("the model must not load")

    async def load_embedder(spec, batch_size):
        loads.append("embedder")
        raise AssertionError("the embedder must not load")

    monkeypatch.setattr(core.bootstrap, "build_generator", build_generator)
    monkeypatch.setattr(core.bootstrap, "load_embedder", load_embedder)
    return loads


def test_run_without_the_telegram_token_exits_2_before_loading_anything(tmp_path, monkeypatch, model_loads):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "t"\n[telegram]\nenabled = true\n[console]\nenabled = false\n', encoding="utf-8")
    result = CliRunner().invoke(bots.cli.app, ["run", str(bot)])
    assert result.exit_code == 2
    assert "telegram.token_env: environment variable 'TELEGRAM_BOT_TOKEN' is not set" in result.output
    assert model_loads == []


def test_a_malformed_token_is_named_without_echoing_it(tmp_path, monkeypatch, model_loads):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "not a token")
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "t"\n[telegram]\nenabled = true\n', encoding="utf-8")
    result = CliRunner().invoke(bots.cli.app, ["run", str(bot)])
    assert result.exit_code == 2 and "does not look like a bot token" in result.output
    assert "not a token" not in result.output and model_loads == []


async def test_a_bad_feature_section_is_refused_before_the_model_loads(tmp_path, model_loads):
    settings = make_settings(model={"backend": "transformers"}, safety={"moderaton": {}}, storage={"path": str(tmp_path / "b.db")})
    with pytest.raises(ConfigError, match=r"safety\.moderaton"):
        async with bot_app(settings):
            pass
    assert model_loads == []
