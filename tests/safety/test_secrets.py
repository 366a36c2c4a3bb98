"""Secrets: values of the bot's secret env vars never appear in logs or config dumps."""

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

from core.errors import GenerationError
from core.generation.scripted import ScriptedGenerator
from core.logmask import SecretMask, masking, secret_env_names
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox
from tests.safety.conftest import safe_app

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "7654321:AAH-telegram-secret-token-Zx9"
SECRETS = {
    "TELEGRAM_BOT_TOKEN": TOKEN,
    "DISCORD_BOT_TOKEN": "discord.secret.token.value",
    "EXTRA_KEY": "sk-extra-0123456789",
    "PLUGIN_KEY": "plugin-secret-абв-密钥",
}


def test_secret_names_come_from_every_section_that_names_one():
    settings = make_settings(
        model={"backend": "openai", "base_url": "http://x", "model": "m", "api_key_env": "OPENAI_KEY"},
        plugins={"kb": {"api_key_env": "PLUGIN_KEY", "nested": [{"token_env": "DEEP"}]}},
    )
    names = secret_env_names(settings, ["EXTRA_KEY"])
    assert names == sorted(["DEEP", "DISCORD_BOT_TOKEN", "EXTRA_KEY", "OPENAI_KEY", "PLUGIN_KEY", "TELEGRAM_BOT_TOKEN"])


def test_the_mask_masks_messages_arguments_tracebacks_stacks_and_url_forms():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.secrets.unit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with masking(TOKEN, "abc"):  # "abc" is too short to mask
            logger.info("GET https://api.telegram.org/bot%s/getMe", TOKEN)
            logger.info("quoted %s", TOKEN.replace(":", "%3A"))
            try:
                raise RuntimeError(f"bad token {TOKEN}")
            except RuntimeError:
                logger.exception("failed", stack_info=True)
            logger.info("abc stays")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert TOKEN not in output and "7654321" not in output
    assert "bot***/getMe" in output and "quoted ***" in output
    assert "RuntimeError: bad token ***" in output and "abc stays" in output
    logger.addHandler(handler)
    try:
        logger.info("after %s", TOKEN)  # released: the value is no longer masked
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().endswith(f"after {TOKEN}\n")


def test_one_mask_serves_every_holder_until_the_last_one_lets_go():
    mask = SecretMask()
    with mask.masking(["first-secret"]):
        with mask.masking(["first-secret", "second-secret"]):
            assert mask.redact("first-secret second-secret") == "*** ***"
        assert mask.redact("first-secret second-secret") == "*** second-secret"
    assert mask.redact("first-secret") == "first-secret"


async def test_no_secret_reaches_any_log_while_the_bot_runs(monkeypatch, caplog):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # a CLI test in this process may have quieted it
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    script = [GenerationError(f"upstream refused key {SECRETS['EXTRA_KEY']}"), RuntimeError(f"crash near {TOKEN}")]
    try:
        async with safe_app(
            generator=ScriptedGenerator(script),
            safety={"secret_envs": ["EXTRA_KEY"]},
            plugins={"kb": {"api_key_env": "PLUGIN_KEY"}},
        ) as app:
            outbox = RecordingOutbox()
            logging.getLogger("httpx").info('HTTP Request: POST https://api.telegram.org/bot%s/getUpdates "200 OK"', TOKEN)
            logging.getLogger("plugin").warning("plugin config %s", {"key": SECRETS["PLUGIN_KEY"]})
            await app.dispatcher.feed(make_event("hi"), outbox)  # GenerationError, logged by the chat service
            await app.dispatcher.feed(make_event("again"), outbox)  # an unexpected error, with traceback
            assert TOKEN not in " ".join(outbox.texts)
    finally:
        logging.getLogger().removeHandler(handler)
    captured = caplog.text + stream.getvalue() + " ".join(r.getMessage() for r in caplog.records)
    assert "getUpdates" in captured and "Traceback" in captured  # the lines were logged…
    for value in SECRETS.values():
        assert value not in captured  # …without the secrets


def test_config_show_never_prints_a_secret(tmp_path):
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "s"\n[model]\nbackend = "scripted"\n[telegram]\nenabled = true\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "config", "show", "--bot", str(bot)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **SECRETS}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"token_env": "TELEGRAM_BOT_TOKEN"' in result.stdout
    assert not any(value in result.stdout + result.stderr for value in SECRETS.values())
