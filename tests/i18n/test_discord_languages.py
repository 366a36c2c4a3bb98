"""Through the Discord fake: slash commands carry description_localizations from the catalogs,
and an interaction's locale picks the language of the answer."""

from __future__ import annotations

import pytest

from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import USER_ID, running_bot


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


async def test_published_commands_carry_chinese_description_localizations(fake, monkeypatch):
    guild = fake.add_guild()
    async with running_bot(fake, monkeypatch, sync_guilds=[str(guild)]):
        await fake.wait_for(lambda: str(guild) in fake.synced)
    published = {command["name"]: command for command in fake.synced[str(guild)]}
    assert published["reset"]["description"] == "Start a new conversation"
    assert published["reset"]["description_localizations"]["zh-CN"] == "开始新的对话"
    assert "en-US" not in published["reset"].get("description_localizations", {})
    admin = published["admin"]
    assert admin["description_localizations"]["zh-CN"] == "机器人管理（仅限机器人管理员）"
    ban = next(option for option in admin["options"] if option["name"] == "ban")
    assert ban["options"][0]["description_localizations"]["zh-CN"] == "带平台前缀的用户 ID，例如 telegram:123"


@pytest.mark.parametrize(("locale", "start"), [("zh-CN", "命令："), ("en-US", "Commands:")])
async def test_the_interaction_locale_picks_the_language_of_help(fake, monkeypatch, locale, start):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch):
        payload = fake.interaction(channel, USER_ID, "help")
        payload["locale"] = locale
        await fake.dispatch("INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: any(m["content"] for m in fake.interaction_messages(payload)))
    message = next(m for m in fake.interaction_messages(payload) if m["content"])
    assert message["content"].startswith(start)
