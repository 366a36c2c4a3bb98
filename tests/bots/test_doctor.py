"""`personabot doctor` and `personabot healthcheck`, in subprocesses as an operator runs
them, against the Telegram and Discord fakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path


from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.postgres_server import PASSWORD, PostgresServer, pg_server  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]
QUIET = '\n[personalization]\nenabled = false\n'  # no embedder to load: these tests are about the other lines


def bot_file(folder: Path, body: str, name: str = "bot.toml") -> Path:
    path = folder / name
    path.write_text('name = "doc"\n[model]\nbackend = "scripted"\nreplies = ["hi"]\n' + body, encoding="utf-8")
    return path


async def doctor(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "PERSONABOT_BOT")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", *args, cwd=REPO,
        env={**environment, "PERSONABOT_DATA_DIR": str(cwd), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 180)
    return process.returncode, out.decode(), err.decode()


def line(output: str, check: str) -> str:
    found = [row for row in output.splitlines() if row[6:].startswith(check + " ")]
    assert len(found) == 1, output
    return found[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_telegram_token_accepted_by_the_fake_passes_every_check(tmp_path):
    api = await FakeBotAPI().start()
    try:
        bot = bot_file(tmp_path, f'[console]\nenabled = false\n[telegram]\nenabled = true\napi_base_url = "{api.base_url}"\n' + QUIET)
        code, out, err = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"TELEGRAM_BOT_TOKEN": TOKEN})
    finally:
        await api.close()
    assert code == 0, out + err
    assert line(out, "telegram token").startswith("ok") and "@persona_test_bot" in out
    assert [row.split()[1] for row in out.splitlines()] == [
        "bot", "personas", "features", "environment", "database", "model", "embedder", "telegram", "ports"]
    assert "TELEGRAM_BOT_TOKEN" in line(out, "environment") and TOKEN not in out + err
    assert [call.method for call in api.calls] == ["getMe"]


async def test_a_refused_telegram_token_fails_its_line_only_and_is_never_printed(tmp_path):
    api = await FakeBotAPI().start()
    wrong = "999:wrong-token-value"
    try:
        bot = bot_file(tmp_path, f'[telegram]\nenabled = true\napi_base_url = "{api.base_url}"\n' + QUIET)
        code, out, err = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"TELEGRAM_BOT_TOKEN": wrong})
    finally:
        await api.close()
    assert code == 1
    assert line(out, "telegram token").startswith("fail") and "token refused (401" in out and "@BotFather" in out
    assert line(out, "model").startswith("ok") and line(out, "database").startswith("ok")  # the others still ran
    assert wrong not in out + err


async def test_discord_token_accepted_and_refused_against_the_fake(tmp_path):
    async with FakeDiscord() as fake:
        bot = bot_file(tmp_path, f'[discord]\nenabled = true\napi_base_url = "{fake.base_url}"\n' + QUIET)
        good = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"DISCORD_BOT_TOKEN": fake.token})
        bad = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"DISCORD_BOT_TOKEN": "not-the-token"})
    assert good[0] == 0, good[1] + good[2]
    assert line(good[1], "discord token").startswith("ok") and "PersonaBot" in good[1]
    assert bad[0] == 1 and "token refused (401" in line(bad[1], "discord token") and "not-the-token" not in bad[1] + bad[2]


async def test_a_missing_token_and_an_unreachable_server_fail_with_a_short_cause(tmp_path):
    port = closed_port()
    bot = bot_file(tmp_path, f'[telegram]\nenabled = true\napi_base_url = "http://127.0.0.1:{port}"\n'
                             f'[discord]\nenabled = true\napi_base_url = "http://127.0.0.1:{port}"\n' + QUIET)
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"DISCORD_BOT_TOKEN": "sekrit-value"})
    assert code == 1
    assert line(out, "environment").startswith("fail") and "not set: TELEGRAM_BOT_TOKEN" in out
    assert "TELEGRAM_BOT_TOKEN is not set" in line(out, "telegram token")
    assert f"cannot reach http://127.0.0.1:{port}/api/v10/users/@me (ConnectError" in line(out, "discord token")
    assert "sekrit-value" not in out


async def test_a_database_that_is_not_one_and_one_that_cannot_be_created_fail(tmp_path):
    (tmp_path / "notes.db").write_text("not a database, just text " * 100, encoding="utf-8")
    bot = bot_file(tmp_path, '[storage]\npath = "notes.db"\n' + QUIET)
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 1 and line(out, "database").startswith("fail") and "notes.db: cannot be read" in out
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    bot = bot_file(tmp_path, '[storage]\npath = "afile/sub/bot.db"\n' + QUIET, name="other.toml")
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 1 and "cannot be created" in line(out, "database")
    assert line(out, "model").startswith("ok")


async def test_a_missing_model_folder_fails_the_model_line(tmp_path):
    bot = tmp_path / "bot.toml"
    bot.write_text(f'name = "doc"\n[model]\nbackend = "transformers"\npath = "{tmp_path / "no-such-model"}"\n' + QUIET, encoding="utf-8")
    code, out, err = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 1, out
    assert line(out, "model").startswith("fail") and "no-such-model" in line(out, "model")
    assert line(out, "database").startswith("ok") and "Traceback" not in out + err


async def test_an_invalid_bot_file_fails_first_and_skips_what_needs_it(tmp_path):
    bot = bot_file(tmp_path, "[limits]\nmax_input_chars = -1\n")
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 1
    assert line(out, "bot file").startswith("fail") and "limits.max_input_chars" in out
    assert all(row.startswith("skip") for row in out.splitlines()[1:])


async def test_the_demo_bot_passes_with_its_bundled_model_and_embedder(tmp_path):
    code, out, err = await doctor("doctor", cwd=tmp_path)  # what the Dockerfile runs at build
    assert code == 0, out + err
    assert "the bundled model loads" in line(out, "model") and line(out, "embedder").startswith("ok")


async def test_healthcheck_probes_the_database_without_http(tmp_path):
    bot = bot_file(tmp_path, QUIET)
    code, out, _ = await doctor("healthcheck", cwd=tmp_path, env={"PERSONABOT_BOT": str(bot)})
    assert code == 0 and "none yet" in out
    (tmp_path / "doc.db").write_text("garbage " * 100, encoding="utf-8")
    code, _, err = await doctor("healthcheck", cwd=tmp_path, env={"PERSONABOT_BOT": str(bot)})
    assert code == 1 and "unhealthy" in err


def postgres_bot(folder: Path, url: str) -> Path:
    return bot_file(folder, f'[storage]\nurl = "{url}"\npassword_env = "PERSONABOT_DB_PASSWORD"\n' + QUIET)


async def test_postgres_reachable_then_at_the_schema_version_then_refusing_a_wrong_password(tmp_path, pg_server):
    from core.storage.postgres import PostgresStore
    from core.storage.postgres.schema import latest_version

    url = (await pg_server.create_database()).replace(f":{PASSWORD}@", "@")
    bot = postgres_bot(tmp_path, url)
    code, out, err = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"PERSONABOT_DB_PASSWORD": PASSWORD})
    assert code == 0, out + err
    assert "reachable, no personabot schema yet" in line(out, "database")
    async with PostgresStore(url, password=PASSWORD):
        pass  # the bot's first start creates the schema
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"PERSONABOT_DB_PASSWORD": PASSWORD})
    assert code == 0 and line(out, "database") == f"ok    database        {url}: schema v{latest_version()}"
    code, out, err = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"PERSONABOT_DB_PASSWORD": "wrong-pw-value"})
    assert code == 1 and "refused the credentials" in line(out, "database") and "wrong-pw-value" not in out + err


async def test_a_stopped_postgres_fails_the_database_line_and_the_others_still_run(tmp_path, pg_server):
    stopped = PostgresServer().start()
    url = stopped.url("personabot", password=False)
    stopped.stop()
    bot = postgres_bot(tmp_path, url)
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"PERSONABOT_DB_PASSWORD": "x"})
    assert code == 1
    assert line(out, "database").startswith("fail") and f"cannot connect to {url}" in out and "start PostgreSQL" in out
    assert line(out, "model").startswith("ok") and line(out, "environment").startswith("ok")


async def test_a_port_in_use_fails_the_ports_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bot = bot_file(tmp_path, f'[http]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n' + QUIET)
        code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 1 and f"in use: [http] 127.0.0.1:{port}" in line(out, "ports")
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 0 and f"free: [http] 127.0.0.1:{port}" in line(out, "ports")


async def test_healthcheck_asks_healthz_when_http_is_enabled(tmp_path):
    from aiohttp import web

    answers = {"status": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=answers["status"])

    server = web.Application()
    server.router.add_get("/healthz", healthz)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        bot = bot_file(tmp_path, f'[http]\nenabled = true\nhost = "0.0.0.0"\nport = {port}\n' + QUIET)
        code, out, _ = await doctor("healthcheck", "--bot", str(bot), cwd=tmp_path)
        assert code == 0 and f"GET http://127.0.0.1:{port}/healthz: 200" in out
        answers["status"] = 503
        code, _, err = await doctor("healthcheck", "--bot", str(bot), cwd=tmp_path)
        assert code == 1 and "HTTP 503" in err
    finally:
        await runner.cleanup()


async def test_an_openai_server_answering_models_and_one_not_serving_the_model(tmp_path):
    from tests.generation.fake_openai import FakeOpenAI

    async with FakeOpenAI() as server:
        for model, expected in (("fake", 0), ("other-model", 1)):
            bot = tmp_path / f"{model}.toml"
            bot.write_text(f'name = "doc"\n[model]\nbackend = "openai"\nbase_url = "{server.base_url}"\nmodel = "{model}"\n'
                           'api_key_env = "OPENAI_API_KEY"\n' + QUIET, encoding="utf-8")
            code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path, env={"OPENAI_API_KEY": "sk-test-secret"})
            assert code == expected, out
            assert "sk-test-secret" not in out
        assert "does not serve 'other-model' (it serves: fake)" in line(out, "model")
        assert server.requests[0]["path"] == "/v1/models" and server.requests[0]["headers"]["authorization"] == "Bearer sk-test-secret"


async def test_a_bad_feature_section_fails_the_features_line(tmp_path):
    bot = bot_file(tmp_path, "[safety]\nbogus = 1\n" + QUIET)
    code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 1 and "safety.bogus" in line(out, "features") and line(out, "features").startswith("fail")
    assert line(out, "bot file").startswith("ok") and line(out, "model").startswith("ok")


async def test_the_web_console_port_is_checked_when_it_has_its_own(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bot = bot_file(tmp_path, f'[web]\nenabled = true\nport = {port}\n' + QUIET)
        code, out, _ = await doctor("doctor", "--bot", str(bot), cwd=tmp_path)
    assert code == 1 and f"in use: [web] console 127.0.0.1:{port}" in line(out, "ports")
