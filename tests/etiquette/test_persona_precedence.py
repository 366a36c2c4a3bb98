"""Persona precedence in groups: only admins switch a group's persona (unless the bot file
allows members), an admin's chat default replaces a member's earlier switch, and the replies
say which setting is in force and who set it."""

from __future__ import annotations

from bots.app_factory import bot_app
from core.events import ChatKind
from core.generation.scripted import ScriptedGenerator
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox

ADMIN, MEMBER = "telegram:999", "telegram:2"


def in_group(text: str, user: str):
    return make_event(text, user, "-5", kind=ChatKind.GROUP)


async def run(texts_users, **settings) -> tuple[list[str], str]:
    outbox = RecordingOutbox()
    app = bot_app(make_settings(**settings), store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]), features=[])
    async with app as bot:
        for text, user in texts_users:
            await bot.dispatcher.feed(in_group(text, user), outbox)
        generator = bot.generator
        await bot.dispatcher.feed(in_group("hello", MEMBER), outbox)
        system = generator.requests[-1].messages[0].content
    return outbox.texts, system


async def test_a_member_cannot_switch_a_groups_persona_and_is_told_what_is_in_force():
    texts, system = await run([("/admin persona-default support chat", ADMIN), ("/persona tutor", MEMBER), ("/persona", MEMBER)])
    assert texts[0] == "Default persona for this chat is now Support agent. In force: this chat's default, set by telegram:999."
    assert texts[1] == (
        "In this group only admins switch the persona. In force: this chat's default, set by telegram:999."
    )
    assert texts[2].startswith("Current persona: Support agent") and texts[2].endswith("set by telegram:999.")
    assert "support" in system.lower() and "tutor" not in system.lower()


async def test_an_admins_later_default_replaces_a_members_earlier_switch():
    texts, system = await run(
        [("/persona tutor", MEMBER), ("/persona", ADMIN), ("/admin persona-default support chat", ADMIN), ("/persona", MEMBER)],
        personas={"members_switch_in_groups": True},
    )
    assert texts[0].startswith("Now talking as Tutor.")
    assert texts[1].endswith("In force: this conversation's choice, set by telegram:2.")
    assert texts[2] == "Default persona for this chat is now Support agent. In force: this chat's default, set by telegram:999."
    assert texts[3].startswith("Current persona: Support agent")
    assert "tutor" not in system.lower()


async def test_an_admin_may_switch_the_conversation_and_the_reply_names_them():
    texts, _ = await run([("/persona tutor", ADMIN), ("/persona", MEMBER)])
    assert texts[0].startswith("Now talking as Tutor.")
    assert texts[1].startswith("Current persona: Tutor") and texts[1].endswith("this conversation's choice, set by telegram:999.")


async def test_without_any_setting_the_bot_files_default_is_named():
    texts, _ = await run([("/persona", MEMBER)])
    assert texts[0].endswith("In force: the bot file's default (companion).")
