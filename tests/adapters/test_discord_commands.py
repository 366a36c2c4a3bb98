"""Slash commands: interaction payloads through the gateway into discord.py's own CommandTree.

The fake REST records the interaction responses (callback, follow-ups, edits).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.commands import ArgSpec, CommandSpec
from core.events import Attachment, CommandCall, ConversationKey, Reply
from tests.adapters.discord_fake_server import FakeDiscord
from tests.adapters.discord_harness import ADMIN_ID, USER_ID, capture, running_bot

EPHEMERAL = 64
MANAGE_GUILD = 1 << 5


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


def with_commands(*specs: CommandSpec):
    async def feature(app, stack) -> None:
        app.commands.extend(specs)

    return feature


def first_response(fake: FakeDiscord, payload) -> dict:
    [message, *_] = fake.interaction_messages(payload)
    return message


async def answered(fake: FakeDiscord, payload) -> dict:
    """Wait until the interaction shows text (not a "thinking…" placeholder); return that message."""
    await fake.wait_for(
        lambda: any(m["content"] and not m.get("loading") for m in fake.interaction_messages(payload))
    )
    return next(m for m in fake.interaction_messages(payload) if m["content"])


async def test_commands_are_generated_from_the_registry_and_published_to_listed_guilds(fake, monkeypatch):
    guild = fake.add_guild()
    async with running_bot(fake, monkeypatch, sync_guilds=[str(guild)]) as bot:
        await fake.wait_for(lambda: str(guild) in fake.synced)
        user_names = {spec.name for spec in bot.app.commands.user_commands()}
    published = {command["name"]: command for command in fake.synced[str(guild)]}
    assert set(published) == user_names | {"admin"}
    assert "global" not in fake.synced
    admin = published["admin"]
    assert int(admin["default_member_permissions"]) == MANAGE_GUILD
    subcommands = {option["name"]: option for option in admin["options"]}
    assert {"stats", "ban", "unban", "persona-default"} <= set(subcommands)
    name, scope = subcommands["persona-default"]["options"]
    assert (name["name"], name["required"], name["type"]) == ("name", True, 3)
    assert (scope["name"], scope.get("required", False)) == ("scope", False)
    assert [choice["value"] for choice in scope["choices"]] == ["chat", "server", "bot"]
    assert published["persona"]["options"][0]["required"] is False
    assert published["help"].get("default_member_permissions") is None


async def test_a_guild_the_bot_may_not_publish_to_is_logged_and_the_bot_still_runs(fake, monkeypatch, caplog):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    fake.fail_next("PUT", r"applications/\d+/guilds/\d+/commands", 403, code=50001)
    caplog.set_level(logging.ERROR, logger="adapters.discord")
    async with running_bot(fake, monkeypatch, sync_guilds=[str(guild)]):
        payload = fake.interaction(channel, USER_ID, "about")
        await fake.dispatch("INTERACTION_CREATE", payload)
        await answered(fake, payload)
    assert any("applications.commands" in record.getMessage() for record in caplog.records)


async def test_help_is_ephemeral_and_hides_admin_commands_from_users(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch):
        payload = fake.interaction(channel, USER_ID, "help")
        await fake.dispatch("INTERACTION_CREATE", payload)
        message = await answered(fake, payload)
    assert fake.interaction_responses[0]["type"] == 4
    assert fake.interaction_responses[0]["data"]["flags"] & EPHEMERAL
    assert message["content"].startswith("Commands:") and "Admin commands" not in message["content"]
    assert fake.interaction_responses[0]["data"]["allowed_mentions"] == {"parse": []}


async def test_an_admin_from_the_bot_file_can_ban(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch) as bot:
        payload = fake.interaction(channel, ADMIN_ID, "admin", {"user": "discord:42"}, sub="ban", permissions=MANAGE_GUILD)
        await fake.dispatch("INTERACTION_CREATE", payload)
        message = await answered(fake, payload)
        assert await bot.app.store.is_banned("discord:42")
    assert message["content"] == "Banned discord:42. The bot will ignore them."
    assert fake.interaction_responses[0]["data"]["flags"] & EPHEMERAL


async def test_a_non_admin_is_refused_even_when_the_owner_overrode_the_default_permissions(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch) as bot:
        # Discord let the call through (the server owner granted the command to everyone)
        payload = fake.interaction(channel, USER_ID, "admin", {"user": "discord:42"}, sub="ban", permissions=MANAGE_GUILD)
        await fake.dispatch("INTERACTION_CREATE", payload)
        message = await answered(fake, payload)
        assert not await bot.app.store.is_banned("discord:42")
        [entry] = await bot.app.store.recent_audit(1)
    assert message["content"] == "Only the bot's admins can do that."
    assert fake.interaction_responses[0]["data"]["flags"] & EPHEMERAL
    assert (entry.actor, entry.action, entry.outcome) == (f"discord:{USER_ID}", "admin ban", "denied")


async def test_members_of_an_admin_role_are_admins(fake, monkeypatch):
    guild = fake.add_guild()
    moderators = fake.add_role(guild, "moderators")
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch, admin_roles=[str(moderators)]) as bot:
        payload = fake.interaction(channel, USER_ID, "admin", {"user": "42"}, sub="ban", roles=(moderators,))
        await fake.dispatch("INTERACTION_CREATE", payload)
        await answered(fake, payload)
        assert await bot.app.store.is_banned("discord:42")


async def test_admins_set_the_persona_per_server_and_per_channel(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    other_channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch) as bot:
        server_wide = fake.interaction(channel, ADMIN_ID, "admin", {"name": "tutor", "scope": "server"}, sub="persona-default")
        await fake.dispatch("INTERACTION_CREATE", server_wide)
        assert (await answered(fake, server_wide))["content"] == (
            f"Default persona for this server is now Tutor. In force: this server's default, set by discord:{ADMIN_ID}."
        )
        here = fake.interaction(channel, ADMIN_ID, "admin", {"name": "support", "scope": "chat"}, sub="persona-default")
        await fake.dispatch("INTERACTION_CREATE", here)
        await answered(fake, here)
        store = bot.app.store
        assert await store.get_setting(f"space:discord:{guild}", "persona") == "tutor"
        assert await store.get_setting(f"chat:discord:{channel}", "persona") == "support"
        message = fake.message(other_channel, USER_ID, f"<@{fake.bot_id}> what is a fraction?", mentions_bot=True)
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_for(lambda: fake.texts_in(other_channel))
    system_prompt = bot.generator.requests[-1].messages[0].content
    assert "patient tutor" in system_prompt


async def test_a_command_that_needs_the_model_is_deferred_at_once_then_followed_up(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    release = asyncio.Event()

    async def think(ctx, args):
        await release.wait()
        return f"thought about {args[0]}"

    spec = CommandSpec("think", "Think hard", think, (ArgSpec("topic", "what", required=True, rest=True),), uses_model=True)
    async with running_bot(fake, monkeypatch, features=[with_commands(spec)]):
        payload = fake.interaction(channel, USER_ID, "think", {"topic": "猫 and dogs"})
        await fake.dispatch("INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: fake.interaction_responses)
        assert fake.interaction_responses[0]["type"] == 5  # deferred before the answer exists
        release.set()
        message = await answered(fake, payload)
    assert message["content"] == "thought about 猫 and dogs"
    assert fake.calls_to("POST", rf"webhooks/{fake.app_id}/{payload['token']}")


async def test_a_refusal_of_a_slow_admin_command_is_not_deferred_so_it_stays_ephemeral(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)

    async def retrain(ctx, args):
        return "retrained"

    spec = CommandSpec("retrain", "Retrain", retrain, admin_only=True, uses_model=True)
    async with running_bot(fake, monkeypatch, features=[with_commands(spec)]):
        refused = fake.interaction(channel, USER_ID, "admin", sub="retrain", permissions=MANAGE_GUILD)
        await fake.dispatch("INTERACTION_CREATE", refused)
        assert (await answered(fake, refused))["content"] == "Only the bot's admins can do that."
        allowed = fake.interaction(channel, ADMIN_ID, "admin", sub="retrain")
        await fake.dispatch("INTERACTION_CREATE", allowed)
        assert (await answered(fake, allowed))["content"] == "retrained"
    assert [(r["type"], (r.get("data") or {}).get("flags", 0) & EPHEMERAL) for r in fake.interaction_responses] == [
        (4, EPHEMERAL),
        (5, 0),
    ]


async def test_an_unexpectedly_slow_answer_is_deferred_before_discord_gives_up(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    release = asyncio.Event()

    async def slow(ctx, args):
        await release.wait()
        return "done"

    spec = CommandSpec("slow", "Slow", slow, private=True)
    async with running_bot(fake, monkeypatch, features=[with_commands(spec)], auto_defer_after=0.05):
        payload = fake.interaction(channel, USER_ID, "slow")
        await fake.dispatch("INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: fake.interaction_responses)
        release.set()
        message = await answered(fake, payload)
    deferral = fake.interaction_responses[0]
    assert deferral["type"] == 5 and deferral["data"]["flags"] & EPHEMERAL
    assert message["content"] == "done"


async def test_an_attachment_is_uploaded_with_the_answer(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    data = '{"name": "Zoë", "城市": "北京"}'.encode()

    async def export(ctx, args):
        return Reply("Your data:", private=True, attachment=Attachment("export.json", data, "application/json"))

    spec = CommandSpec("export", "Export", export, private=True)
    async with running_bot(fake, monkeypatch, features=[with_commands(spec)]):
        payload = fake.interaction(channel, USER_ID, "export")
        await fake.dispatch("INTERACTION_CREATE", payload)
        message = await answered(fake, payload)
    assert message["files"] == {"export.json": data}
    assert fake.interaction_responses[0]["data"]["flags"] & EPHEMERAL


async def test_a_skipped_option_before_a_given_one_gets_the_usage(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)

    async def pick(ctx, args):
        return " ".join(args)

    spec = CommandSpec("pick", "Pick", pick, (ArgSpec("first", "one"), ArgSpec("second", "two")))
    async with running_bot(fake, monkeypatch, features=[with_commands(spec)]):
        skipped = fake.interaction(channel, USER_ID, "pick", {"second": "b"})
        await fake.dispatch("INTERACTION_CREATE", skipped)
        assert (await answered(fake, skipped))["content"] == "Usage: /pick [FIRST] [SECOND]"
        both = fake.interaction(channel, USER_ID, "pick", {"first": "a", "second": "b"})
        await fake.dispatch("INTERACTION_CREATE", both)
        assert (await answered(fake, both))["content"] == "a b"


async def test_a_command_discord_knows_but_the_bot_does_not_is_answered_ephemerally(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    async with running_bot(fake, monkeypatch):
        payload = fake.interaction(channel, USER_ID, "frobnicate")
        await fake.dispatch("INTERACTION_CREATE", payload)
        message = await answered(fake, payload)
    assert "personabot discord sync" in message["content"]
    assert fake.interaction_responses[0]["data"]["flags"] & EPHEMERAL


async def test_a_banned_users_deferred_command_leaves_no_thinking_message(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)

    async def think(ctx, args):
        return "thoughts"

    spec = CommandSpec("think", "Think", think, uses_model=True)
    async with running_bot(fake, monkeypatch, features=[with_commands(spec)]) as bot:
        await bot.app.store.set_banned(f"discord:{USER_ID}", True)
        payload = fake.interaction(channel, USER_ID, "think")
        await fake.dispatch("INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: fake.calls_to("DELETE", rf"webhooks/\d+/{payload['token']}/messages/@original"))
    assert fake.interaction_messages(payload) == []


async def test_commands_work_in_direct_messages(fake, monkeypatch):
    dm_channel = 555000000000000002
    async with running_bot(fake, monkeypatch):
        payload = fake.interaction(dm_channel, USER_ID, "persona", {"name": "tutor"})
        await fake.dispatch("INTERACTION_CREATE", payload)
        message = await answered(fake, payload)
    assert message["content"].startswith("Now talking as Tutor.")


async def test_stop_lets_a_command_in_progress_answer_first(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    release = asyncio.Event()

    async def think(ctx, args):
        await release.wait()
        return "finished"

    spec = CommandSpec("think", "Think", think, uses_model=True)
    async with running_bot(fake, monkeypatch, features=[with_commands(spec)]) as bot:
        payload = fake.interaction(channel, USER_ID, "think")
        await fake.dispatch("INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: fake.interaction_responses)
        bot.stop.set()
        release.set()
        await asyncio.wait_for(bot.task, 10)
    assert [m["content"] for m in fake.interaction_messages(payload)] == ["finished"]


async def test_a_command_in_a_thread_acts_on_the_threads_conversation(fake, monkeypatch):
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    thread = fake.add_thread(guild, channel)
    events = []
    async with running_bot(fake, monkeypatch, features=[capture(events)]):
        payload = fake.interaction(thread, USER_ID, "reset")
        await fake.dispatch("INTERACTION_CREATE", payload)
        await answered(fake, payload)
    [event] = events
    assert event.key == ConversationKey("discord", str(channel), str(thread))
    assert (event.space_id, event.command) == (str(guild), CommandCall("reset"))
    assert event.event_id == f"discord:interaction:{payload['id']}"
