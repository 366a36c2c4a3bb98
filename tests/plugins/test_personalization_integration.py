"""Personalization and plugins together: /export, /forget and /recommend reach the plugins."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
import typer
from typer.testing import CliRunner

from bots.users_cli import register
from bots.app_factory import bot_app
from core.generation.scripted import ScriptedGenerator
from core.personalization import setup_personalization
from core.plugins import setup_plugins
from core.settings import load_bot_settings
from core.storage.sqlite import SQLiteStore
from tests.personalization.helpers import CATALOG, HashingEmbedder, say
from tests.plugins.helpers import bot_settings, write_plugin

USER, LINKED, OTHER, BROKEN = "telegram:1", "discord:7", "telegram:2", "telegram:666"

DIARY = '''
from core.plugins import ArgSpec, Plugin

plugin = Plugin("diary", stores_user_data=True)

@plugin.on_setup
async def offer(ctx):
    ctx.add_catalog_items([
        {"title": "Stargazing with a telescope", "description": "Find planets and stars at night.", "tags": ["astronomy"]},
        {"id": "jazz-listening-guide", "title": "Duplicate of the bot file's item"},
    ])

@plugin.command("diary", "Write in your diary", args=(ArgSpec("text", "the entry", rest=True),))
async def write(turn):
    await turn.plugin.storage.user(turn.user).set("entry", turn.args[0] if turn.args else "")
    return "written"

@plugin.command("offer", "Offer one more catalog item", args=(ArgSpec("title", "its title", rest=True),))
async def offer_more(turn):
    turn.plugin.add_catalog_items([{"title": turn.args[0]}])
    return "offered"

@plugin.export_user
async def export(ctx, user_id):
    return {"entry": await ctx.storage.user(user_id).get("entry")}

@plugin.forget_user
async def forget(ctx, user_id):
    ctx.log.info("forgetting %s", user_id)
    forgotten = await ctx.storage.get("forgotten", [])
    await ctx.storage.set("forgotten", forgotten + [user_id])
    if user_id == "telegram:666":
        raise RuntimeError("the diary's disk is gone")
    return await ctx.storage.user(user_id).forget()
'''

PLUGINS = {"enabled": ["diary"], "paths": {"diary": "diary.py"}}


def settings(tmp_path):
    write_plugin(tmp_path, "diary", DIARY)
    limits = {"user_burst": 10_000, "chat_burst": 10_000}
    return bot_settings(tmp_path, PLUGINS, catalog=CATALOG, limits=limits)


@asynccontextmanager
async def both(bot_settings_, db=":memory:"):
    async with bot_app(
        bot_settings_,
        store=SQLiteStore(db),
        generator=ScriptedGenerator(["Nice to hear that!"]),
        embedder=HashingEmbedder(),
        features=[setup_personalization, setup_plugins],
    ) as app:
        yield app


async def link(app, owner: str, other: str) -> None:
    code = (await say(app, "/link", owner)).last.split("Your link code: ")[1].split()[0]
    assert "Linked with" in (await say(app, f"/link {code}", other)).last


async def forgotten_by_plugin(app) -> list[str]:
    return await app.store.plugin_get("diary", "forgotten") or []


async def test_export_carries_each_linked_identitys_plugin_data(tmp_path):
    async with both(settings(tmp_path)) as app:
        await link(app, USER, LINKED)
        await say(app, "/diary 今天很开心", USER)
        await say(app, "/diary shipped it", LINKED)
        await say(app, "/diary not mine", OTHER)
        reply = (await say(app, "/export", USER)).replies[-1]
        data = json.loads(reply.attachment.data)
        by_user = {entry["user_id"]: entry["plugins"] for entry in data["identities"]}
        assert by_user == {USER: {"diary": {"entry": "今天很开心"}}, LINKED: {"diary": {"entry": "shipped it"}}}


async def test_forget_confirm_runs_the_plugins_forget_for_every_linked_identity(tmp_path):
    async with both(settings(tmp_path)) as app:
        await link(app, USER, LINKED)
        await say(app, "/diary secret", USER)
        await say(app, "/diary kept", OTHER)
        await say(app, "/forget", USER)
        assert (await say(app, "/forget confirm", USER)).last == "Done. I deleted everything I kept about you."
        assert sorted(await forgotten_by_plugin(app)) == [LINKED, USER]
        assert await app.services.plugins.export_user(USER) == {"diary": {"entry": None}}
        assert await app.services.plugins.export_user(OTHER) == {"diary": {"entry": "kept"}}


async def test_a_failing_plugin_forget_is_told_to_the_user_and_the_core_data_still_goes(tmp_path):
    async with both(settings(tmp_path)) as app:
        await say(app, "I live in Berlin", BROKEN)
        await say(app, "/diary private", BROKEN)
        assert (await app.store.export_user(BROKEN))["messages"]
        await say(app, "/forget", BROKEN)
        answer = (await say(app, "/forget confirm", BROKEN)).last
        assert "could not be deleted yet" in answer and "deleted your messages, profile and memories" in answer
        assert await forgotten_by_plugin(app) == [BROKEN]
        left = await app.store.export_user(BROKEN)
        assert left["user"] is None and left["messages"] == [] and left["memories"] == []
        assert left["plugin_data"] == []  # the framework's rows of the plugin went as well
        audit = [row for row in (await app.store.recent_audit(10)) if row.action == "forget"]
        assert audit[0].outcome == "error" and "diary" in json.dumps(audit[0].detail)


async def test_recommend_offers_plugin_items_and_sees_items_added_later(tmp_path):
    async with both(settings(tmp_path)) as app:
        for text in ["astronomy is my hobby", "I watch stars and planets at night with a telescope"]:
            await say(app, text)
        answer = (await say(app, "/recommend 1")).last
        assert answer.splitlines()[1].startswith("1. Stargazing with a telescope — matches your interest in astronomy")
        everything = (await say(app, "/recommend 10")).last
        assert "Knife skills for home cooks" in everything  # the bot file's catalog is still there
        assert "Duplicate" not in everything  # an id the bot file already uses
        await say(app, "/offer Night sky photography with a telescope: planets and stars")
        assert "Night sky photography" in (await say(app, "/recommend 10")).last


def test_the_users_cli_exports_and_forgets_plugin_data(tmp_path):
    write_plugin(tmp_path, "diary", DIARY)
    bot = tmp_path / "bot.toml"
    bot.write_text(
        'name = "clibot"\n[model]\nbackend = "scripted"\n[storage]\npath = "clibot.db"\n'
        '[plugins]\nenabled = ["diary"]\n[plugins.paths]\ndiary = "diary.py"\n',
        encoding="utf-8",
    )

    async def fill() -> None:
        async with both(load_bot_settings(bot), tmp_path / "clibot.db") as app:
            await say(app, "/diary 我的日记", USER)

    async def forgotten() -> list[str]:
        async with SQLiteStore(tmp_path / "clibot.db") as store:
            return await store.plugin_get("diary", "forgotten") or []

    asyncio.run(fill())
    cli = typer.Typer()
    register(cli)
    runner = CliRunner()
    exported = runner.invoke(cli, ["users", "export", USER, "--bot", str(bot)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["identities"][0]["plugins"] == {"diary": {"entry": "我的日记"}}
    done = runner.invoke(cli, ["users", "forget", USER, "--bot", str(bot), "--yes"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout.strip().splitlines()[-1])["deleted_rows"]["plugin:diary"] == 1
    assert asyncio.run(forgotten()) == [USER]
    failed = runner.invoke(cli, ["users", "forget", BROKEN, "--bot", str(bot), "--yes"])
    assert failed.exit_code == 1 and "not all plugin data" in failed.output


@pytest.mark.parametrize("plugins", [False, True])
async def test_export_has_a_plugins_key_only_when_plugins_run(tmp_path, plugins):
    features = [setup_personalization, setup_plugins] if plugins else [setup_personalization]
    async with bot_app(settings(tmp_path), store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]),
                   embedder=HashingEmbedder(), features=features) as app:
        data = json.loads((await say(app, "/export")).replies[-1].attachment.data)
        assert ("plugins" in data["identities"][0]) is plugins
