"""`personabot users export|forget USER_ID --bot FILE` on a real bot database."""

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

from bots.users_cli import register
from core.settings import load_bot_settings
from tests.personalization.helpers import personal_app, rows_naming, say

BOT = """
name = "clibot"
[model]
backend = "scripted"
replies = ["ok"]
[storage]
path = "clibot.db"
[limits]
user_burst = 1000
"""


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, list(args), **kw)


@pytest.fixture
def bot_file(tmp_path):
    path = tmp_path / "bot.toml"
    path.write_text(BOT, encoding="utf-8")

    async def fill():
        async with personal_app(tmp_path / "clibot.db", settings=load_bot_settings(path)) as app:
            await say(app, "我叫小明。I live in Berlin")
            await say(app, "I live in Rome", user="telegram:2")
            code = (await say(app, "/link")).last.split("Your link code: ")[1].split()[0]
            await say(app, f"/link {code}", user="discord:7")
            await say(app, "I have a dog named Rex", user="discord:7")

    asyncio.run(fill())
    return path


def test_export_prints_everything_about_the_user_and_linked_ids(cli, bot_file, tmp_path):
    result = cli("users", "export", "telegram:1", "--bot", str(bot_file))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["user_id"] == "telegram:1" and data["linked_identities"] == ["discord:7"]
    texts = {m["text"] for identity in data["identities"] for m in identity["memories"]}
    assert texts == {"我叫小明", "I live in Berlin.", "I have a dog named Rex."}
    out = tmp_path / "export.json"
    assert cli("users", "export", "telegram:1", "--bot", str(bot_file), "--out", str(out)).exit_code == 0
    again = json.loads(out.read_text(encoding="utf-8"))["identities"]
    without_audit = lambda identities: [{k: v for k, v in i.items() if k != "audit"} for i in identities]  # noqa: E731
    assert without_audit(again) == without_audit(data["identities"])
    assert any(e["actor"] == "cli" and e["action"] == "export" for i in again for e in i["audit"])  # the first export


def test_forget_asks_then_deletes_every_row_of_the_person(cli, bot_file, tmp_path):
    db = tmp_path / "clibot.db"
    refused = cli("users", "forget", "telegram:1", "--bot", str(bot_file), input="n\n")
    assert refused.exit_code == 1 and rows_naming(db, ["telegram:1"])
    done = cli("users", "forget", "telegram:1", "--bot", str(bot_file), input="y\n")
    assert done.exit_code == 0, done.output
    assert sorted(json.loads(done.stdout.strip().splitlines()[-1])["forgotten"]) == ["discord:7", "telegram:1"]
    assert rows_naming(db, ["telegram:1", "discord:7", "小明", "Berlin", "Rex"]) == {}
    assert rows_naming(db, ["telegram:2"])  # someone else
    empty = json.loads(cli("users", "export", "telegram:1", "--bot", str(bot_file)).stdout)
    assert empty["identities"][0]["user"] is None and empty["identities"][0]["messages"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "export", "1234"), "bad user id"),
        (("users", "forget", "nope", "--yes"), "bad user id"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, bot_file, args, message):
    result = cli(*args, "--bot", str(bot_file))
    assert result.exit_code == 2 and message in result.output


def test_a_bot_without_a_database_is_refused_without_creating_one(cli, tmp_path):
    path = tmp_path / "other.toml"
    path.write_text(BOT.replace("clibot.db", "missing.db"), encoding="utf-8")
    result = cli("users", "forget", "telegram:1", "--bot", str(path), "--yes")
    assert result.exit_code == 2 and "no database" in result.output
    assert not (tmp_path / "missing.db").exists()
    assert cli("users", "export", "telegram:1", "--bot", str(tmp_path / "nofile.toml")).exit_code == 2


def audit_rows(db):
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [(actor, action, target, outcome, json.loads(detail))
                for actor, action, target, outcome, detail in conn.execute(
                    "SELECT actor, action, target, outcome, detail FROM audit_log ORDER BY id")]


def test_the_cli_export_and_forget_are_audited_and_the_forget_record_names_nobody(cli, bot_file, tmp_path):
    db = tmp_path / "clibot.db"
    assert cli("users", "export", "telegram:1", "--bot", str(bot_file)).exit_code == 0
    assert audit_rows(db)[-1][:4] == ("cli", "export", "telegram:1", "ok")
    assert cli("users", "forget", "telegram:1", "--bot", str(bot_file), "--yes").exit_code == 0
    rows = audit_rows(db)
    forgets = [row for row in rows if row[1] == "forget"]
    assert len(forgets) == 1 and forgets[0][:4] == ("cli", "forget", "", "ok")
    assert forgets[0][4]["identities"] == 2 and forgets[0][4]["deleted"]["memories"] == 3
    assert ("cli", "export", "[forgotten]", "ok") in [row[:4] for row in rows]  # the export stays, redacted
    assert "telegram:1" not in str(rows) and "discord:7" not in str(rows)
