"""personabot access approve CODE: the operator's approval of a pairing code (audited as cli:operator)."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

import typer

from bots.access_cli import register
from core.access import Pairing
from core.storage.sqlite import SQLiteStore


def test_the_cli_approves_a_code_once_and_refuses_it_after(tmp_path):
    cli = typer.Typer()
    register(cli)
    bot = tmp_path / "bot.toml"
    bot.write_text('name = "paired"\n[model]\nbackend = "scripted"\n[storage]\npath = "bot.db"\n[access]\npairing = true\n')

    async def issue() -> str:
        async with SQLiteStore(tmp_path / "bot.db") as store:
            return await Pairing(store, 600).issue("telegram:5")

    code = asyncio.run(issue())
    first = CliRunner().invoke(cli, ["access", "approve", code, "--bot", str(bot)])
    assert first.exit_code == 0 and "approved telegram:5" in first.output
    again = CliRunner().invoke(cli, ["access", "approve", code, "--bot", str(bot)])
    assert again.exit_code == 1 and "code refused (used)" in again.output

    async def audit():
        async with SQLiteStore(tmp_path / "bot.db") as store:
            return [(e.actor, e.outcome) for e in await store.recent_audit(10) if e.action == "pairing approve"]

    assert sorted(asyncio.run(audit())) == [("cli:operator", "denied"), ("cli:operator", "ok")]
