"""`personabot storage migrate`: a bot's SQLite database copied into PostgreSQL, verified."""

from __future__ import annotations

import asyncio

import typer
from typer.testing import CliRunner

from bots.storage_cli import register
from core.events import ConversationKey
from core.records import Profile
from core.storage.postgres import PostgresStore
from core.storage.sqlite import SQLiteStore
from tests.postgres_server import PASSWORD, SUPERUSER, pg_server, pg_url  # noqa: F401

ANN, BOB = "telegram:1001", "discord:2002"
DM = ConversationKey("telegram", "1001")


async def _fill(path) -> None:
    async with SQLiteStore(path) as store:
        await store.touch_user(ANN, "Ann 小明")
        await store.save_profile(Profile(ANN, {"name": "小明"}, {"training": True}, (0.5, -0.25), 2))
        await store.add_memory(ANN, "home", "Paris", [0.1, 0.2, 0.3], "private")
        await store.add_memory(ANN, "home", "Berlin", [0.4, 0.5, 0.6], "private")  # supersedes Paris
        for i in range(30):
            conversation = await store.active_conversation(DM)
            turn = await store.add_user_message(conversation.id, ANN, f"q{i} 你好\x00", f"telegram:update:{i}")
            if i % 3:
                await store.add_reply(turn.id, f"a{i}")
        await store.reset_conversation(DM)
        await store.link_identities(ANN, BOB)
        await store.set_banned(BOB, True)
        await store.audit("telegram:9", "ban", BOB, detail={"why": "spam"})
        await store.plugin_set("notes", "k", {"v": [1, 2]}, user_id=ANN)
        await store.add_job("remind", "ping", 1e9, key=DM, user_id=ANN, payload={"t": "喝水"})
        await store.take_token(f"user:{ANN}", 1.0, 3, 1000.0)
        await store.use_quota(f"user:{ANN}", "2026-12-01", 10)


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_migrate_copies_every_table_and_the_stores_agree(tmp_path, pg_url):
    path = tmp_path / "bot.db"
    asyncio.run(_fill(path))
    result = CliRunner().invoke(_cli(), ["storage", "migrate", "--from", f"sqlite:{path}", "--to", pg_url])
    assert result.exit_code == 0, result.output
    assert "messages" in result.stdout and "NO" not in result.stdout

    async def both() -> tuple:
        async with SQLiteStore(path) as old, PostgresStore(pg_url) as new:
            exported = (await old.export_user(ANN), await new.export_user(ANN))
            stats = (await old.stats(), await new.stats())
            jobs = (await old.list_jobs("remind"), await new.list_jobs("remind"))
            quota = await new.quota_used(f"user:{ANN}", "2026-12-01")
            fresh = await new.active_conversation(ConversationKey("telegram", "new"))  # ids continue
            return exported, stats, jobs, quota, fresh, await new.is_banned(BOB)

    exported, stats, jobs, quota, fresh, banned = asyncio.run(both())
    assert exported[0] == exported[1] and stats[0] == stats[1] and jobs[0] == jobs[1]
    assert [m["text"] for m in exported[1]["memories"]] == ["Paris", "Berlin"]
    assert exported[1]["memories"][0]["superseded_by"] == exported[1]["memories"][1]["id"]
    assert quota == 1 and banned and fresh.id == stats[1]["conversations"] + 1


def test_a_second_run_into_the_filled_database_is_refused(tmp_path, pg_url):
    path = tmp_path / "bot.db"
    asyncio.run(_fill(path))
    args = ["storage", "migrate", "--from", f"sqlite:{path}", "--to", pg_url]
    assert CliRunner().invoke(_cli(), args).exit_code == 0
    again = CliRunner().invoke(_cli(), args)
    assert again.exit_code == 2 and "already holds rows" in again.output


def test_bad_arguments_exit_2_naming_the_option(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(_cli(), ["storage", "migrate", "--from", f"sqlite:{tmp_path}/none.db", "--to", "postgresql://x@127.0.0.1:1/db"])
    assert missing.exit_code == 2 and "no database" in missing.output
    path = tmp_path / "bot.db"
    asyncio.run(_fill(path))
    refused = runner.invoke(_cli(), ["storage", "migrate", "--from", f"sqlite:{path}", "--to", "postgresql://x@127.0.0.1:1/db"])
    assert refused.exit_code == 2 and "--to: cannot connect" in refused.output


def _bot_file(tmp_path, storage: str):
    bot = tmp_path / "bot.toml"
    bot.write_text(f'name = "pgbot"\n[model]\nbackend = "scripted"\n[storage]\n{storage}\n', encoding="utf-8")
    return bot


def _ask(bot, env=None):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "bots.cli", "ask", "hello", "--bot", str(bot)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_a_refused_connection_or_bad_credentials_exit_2_naming_storage_url(tmp_path, pg_server):
    cases = [
        ('url = "postgresql://bot@127.0.0.1:1/bot"', {}, "cannot connect"),
        (f'url = "postgresql://{SUPERUSER}@127.0.0.1:{pg_server.port}/postgres"\npassword_env = "PB_TEST_PW"',
         {"PB_TEST_PW": "not-the-password"}, "refused the credentials"),
        ('url = "postgresql://bot@127.0.0.1:1/bot"\npassword_env = "PB_UNSET_PW"', {}, "PB_UNSET_PW"),
    ]
    for storage, env, reason in cases:
        result = _ask(_bot_file(tmp_path, storage), env)
        assert result.returncode == 2, result.stderr
        assert "storage.url" in result.stderr or "storage.password_env" in result.stderr, result.stderr
        assert reason in result.stderr and "Traceback" not in result.stderr and "not-the-password" not in result.stderr


def test_a_malformed_url_is_refused_when_the_bot_file_is_read(tmp_path):
    result = _ask(_bot_file(tmp_path, 'url = "mysql://bot@db/bot"'))
    assert result.returncode == 2 and "storage.url" in result.stderr and "postgresql://" in result.stderr


def test_a_bot_file_with_a_postgresql_url_answers(tmp_path, pg_server):
    url = asyncio.run(pg_server.create_database())
    bare = url.replace(f":{PASSWORD}@", "@")
    bot = _bot_file(tmp_path, f'url = "{bare}"\npassword_env = "PB_TEST_PW"')
    result = _ask(bot, {"PB_TEST_PW": PASSWORD})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_a_second_personabot_run_on_one_sqlite_file_is_refused_naming_postgresql(tmp_path):
    import os
    import subprocess
    import sys

    bot = tmp_path / "bot.toml"
    bot.write_text(
        'name = "twice"\n[model]\nbackend = "scripted"\nreplies = ["hi"]\n[storage]\npath = "twice.db"\n'
        "[console]\nenabled = true\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "bots.cli", "run", str(bot)]
    env = {**os.environ, "PERSONABOT_DATA_DIR": str(tmp_path)}
    first = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first.stdin.write("hello\n".encode())
        first.stdin.flush()
        assert first.stdout.readline().decode().strip()  # it answered: it is serving, the claim is held
        second = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1, second.stderr
        assert "another personabot process" in second.stderr and "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()
