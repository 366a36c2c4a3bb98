"""[telegram] group_admins_are_admins: a group's own administrators (getChatAdministrators, cached)
are bot admins in that group only, through the Telegram Bot API fake."""

from __future__ import annotations

import pytest

from adapters.telegram.group_admins import GroupAdmins
from bots.app_factory import bot_app
from core.dispatcher import Context
from core.events import ChatKind
from core.generation.scripted import ScriptedGenerator
from core.storage.sqlite import SQLiteStore
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, serving, telegram_settings, until
from tests.conftest import make_event
from tests.fakes import RecordingOutbox

OURS, OTHER, MOD, MEMBER = -100111, -100222, 31, 32
REFUSED = "Only the bot's admins can do that."


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    server.chat_admins = {OURS: [30, MOD], OTHER: [40]}
    yield server
    await server.close()


async def test_a_group_admin_is_an_admin_in_their_group_only(fake):
    settings = telegram_settings(fake, group_admins_are_admins=True)
    app = bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]), features=[])
    async with app as bot, serving(bot, fake):
        assert "access:telegram_group_admins" in bot.dispatcher.describe()
        fake.user_message("/admin persona-default support chat", chat_id=OURS, user_id=MOD)
        await until(fake, lambda: fake.texts(OURS))
        fake.user_message("/admin persona-default support chat", chat_id=OURS, user_id=MEMBER)
        await until(fake, lambda: fake.texts(MEMBER))  # refusals in a group go to the user's DM
        fake.user_message("/admin persona-default support chat", chat_id=OTHER, user_id=MOD)
        await until(fake, lambda: fake.texts(MOD))
        fake.user_message("/admin persona-default support chat", chat_id=MOD)  # their DM
        await until(fake, lambda: len(fake.texts(MOD)) == 2)
    assert fake.texts(OURS) == ["Default persona for this chat is now Support agent. In force: this chat's default, set by telegram:31."]
    assert fake.texts(MEMBER) == [REFUSED]  # a member of the group is not an admin
    assert fake.texts(MOD) == [REFUSED, REFUSED]  # nor is our moderator in another group, nor in a DM
    assert not fake.texts(OTHER)
    assert len(fake.calls_of("getChatAdministrators")) == 2  # one per group, then cached


async def test_a_group_admin_acts_on_their_group_only_never_bot_wide(fake):
    """The group's moderator runs what acts on that group; banning users everywhere,
    statistics and the other scopes of persona-default stay with the bot's admins."""
    settings = telegram_settings(fake, group_admins_are_admins=True)
    store = SQLiteStore(":memory:")
    app = bot_app(settings, store=store, generator=ScriptedGenerator(["ok"]), features=[])
    async with app as bot, serving(bot, fake):
        for text in ("/admin ban 99", "/admin stats", "/admin persona-default support bot"):
            fake.user_message(text, chat_id=OURS, user_id=MOD)
        await until(fake, lambda: len(fake.texts(MOD)) == 3)
        fake.user_message("/help", chat_id=OURS, user_id=MOD)  # answered in the caller's DM
        await until(fake, lambda: len(fake.texts(MOD)) == 4)
        fake.user_message("/persona support", chat_id=OURS, user_id=MOD)  # members may not switch a group's persona
        await until(fake, lambda: fake.texts(OURS))
        assert not await store.is_banned("telegram:99")
        assert await store.get_setting("bot", "persona") is None
        denied = [(e.action, e.outcome) for e in await store.recent_audit(10) if e.actor == f"telegram:{MOD}"]
    assert fake.texts(MOD)[:3] == [REFUSED] * 3  # five messages: within the user's burst
    assert ("admin ban", "denied") in denied and ("admin persona-default", "denied") in denied
    help_text = fake.texts(MOD)[3]
    assert "/admin persona-default" in help_text and "/admin ban" not in help_text and "/admin stats" not in help_text
    assert "Support agent" in fake.texts(OURS)[0] and len(fake.texts(MOD)) == 4


async def test_off_by_default_a_group_admin_is_not_a_bot_admin(fake):
    app = bot_app(telegram_settings(fake), store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]), features=[])
    async with app as bot, serving(bot, fake):
        assert "access:telegram_group_admins" not in bot.dispatcher.describe()
        fake.user_message("/admin persona-default support chat", chat_id=OURS, user_id=MOD)
        await until(fake, lambda: fake.texts(MOD))
    assert fake.texts(MOD) == [REFUSED]
    assert not fake.calls_of("getChatAdministrators")


async def test_the_cache_expires_and_a_failed_fetch_keeps_the_last_list():
    now, answers = [0.0], [frozenset({"31"}), RuntimeError("Bot API down"), frozenset({"33"})]

    async def lister(chat_id: str) -> frozenset[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    admins = GroupAdmins(lister, ttl_s=60, clock=lambda: now[0])

    async def is_admin_after(user: str, at: float) -> bool:
        now[0] = at
        event = make_event("/admin stats", user, "-100111", kind=ChatKind.GROUP)
        seen = []

        async def call_next(ctx: Context) -> None:
            seen.append(admins.policy(ctx.event))

        await admins.refresh(Context(event, RecordingOutbox()), call_next)
        return seen[0]

    assert await is_admin_after("telegram:31", 0)
    assert await is_admin_after("telegram:31", 59)  # cached: no second fetch
    assert await is_admin_after("telegram:31", 61)  # fetch failed: the last list stays
    assert not await is_admin_after("telegram:31", 122)  # demoted meanwhile
    assert await is_admin_after("telegram:33", 122)
    assert not answers
    assert not admins.policy(make_event("hi", "telegram:33", "-100999", kind=ChatKind.GROUP))  # another group
