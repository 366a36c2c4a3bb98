"""Who may talk to the bot: allow lists of users, chats and servers, and DM pairing
(one-time codes an admin approves; wrong, expired and reused codes refused and audited)."""

from __future__ import annotations

import dataclasses
import re

from bots.app_factory import bot_app
from core.access import Pairing
from core.events import ChatKind
from core.generation.scripted import ScriptedGenerator
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox

ADMIN = "telegram:999"
CODE = re.compile(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b")


def app_for(access: dict, store=None):
    settings = make_settings(access=access, admins=[ADMIN])
    return bot_app(settings, store=store or SQLiteStore(":memory:"), generator=ScriptedGenerator(["hi there"]), features=[])


def group_event(text: str, user: str, chat: str = "-100", space: str | None = None):
    return make_event(text, user, chat, kind=ChatKind.GROUP, space_id=space)


async def feed(bot, event) -> list[str]:
    outbox = RecordingOutbox()
    await bot.dispatcher.feed(event, outbox)
    return outbox.texts


async def test_the_default_bot_is_open_and_has_no_allow_list_in_its_chain():
    async with app_for({}) as bot:
        assert "access:allow_list" not in bot.dispatcher.describe()
        assert await feed(bot, make_event("hello", "telegram:5")) == ["hi there"]


async def test_listed_users_chats_and_servers_are_answered_and_others_are_not():
    access = {"users": ["telegram:1"], "chats": ["telegram:-200"], "servers": ["discord:77"]}
    async with app_for(access) as bot:
        assert "access:allow_list" in bot.dispatcher.describe()
        assert await feed(bot, make_event("hello", "telegram:1")) == ["hi there"]
        assert await feed(bot, make_event("hello", ADMIN)) == ["hi there"]  # admins always
        assert await feed(bot, group_event("hello", "telegram:5", "-200")) == ["hi there"]  # a listed chat
        assert await feed(bot, group_event("hello", "discord:5", "300", space="77")) == ["hi there"]  # a listed server
        assert await feed(bot, group_event("hello", "telegram:5", "-100")) == []  # groups: silence
        told = await feed(bot, make_event("hello", "telegram:5"))
        assert told == ["This bot only talks to people on its list. Ask its operator for access."]
        assert await feed(bot, make_event("again", "telegram:5")) == []  # told once
        assert await feed(bot, make_event("/help", "telegram:6")) == told  # commands too


async def test_a_linked_identity_of_a_listed_user_is_let_in():
    store = SQLiteStore(":memory:")
    async with app_for({"users": ["discord:1"]}, store) as bot:
        await bot.store.link_identities("discord:1", "telegram:1")
        assert await feed(bot, make_event("hello", "telegram:1")) == ["hi there"]


async def test_pairing_gives_a_code_an_admin_approves_and_the_user_is_let_in(tmp_path):
    database = tmp_path / "bot.db"
    async with app_for({"pairing": True}, SQLiteStore(database)) as bot:
        first = await feed(bot, make_event("hello", "telegram:5"))
        assert len(first) == 1 and first[0].startswith("This bot needs an admin's approval first.")
        code = CODE.search(first[0]).group(1)
        waiting = await feed(bot, make_event("hello?", "telegram:5"))
        assert waiting == ["Your access is waiting for an admin's approval (the code expires in 60 minutes)."]
        assert await feed(bot, make_event("/admin approve " + code, "telegram:5")) != ["hi there"]  # not an admin
        approved = await feed(bot, make_event("/admin approve " + code.lower().replace("-", ""), ADMIN))
        assert approved == ["Approved telegram:5: they can talk to the bot now."]
        assert await feed(bot, make_event("hello", "telegram:5")) == ["hi there"]
        reused = await feed(bot, make_event("/admin approve " + code, ADMIN))
        wrong = await feed(bot, make_event("/admin approve AAAA-AAAA", ADMIN))
        assert reused == wrong == ["That code is not valid: it is wrong, expired or already used."]
        audit = [(e.actor, e.action, e.target, e.outcome, e.detail.get("reason")) for e in await bot.store.recent_audit(50)]
    assert ("telegram:5", "pairing request", "telegram:5", "ok", None) in audit
    assert (ADMIN, "pairing approve", "telegram:5", "ok", None) in audit
    assert (ADMIN, "pairing approve", "", "denied", "used") in audit
    assert (ADMIN, "pairing approve", "", "denied", "wrong") in audit
    async with app_for({"pairing": True}, SQLiteStore(database)) as bot:  # a restart keeps the approval
        assert await feed(bot, make_event("hello again", "telegram:5")) == ["hi there"]


async def test_an_expired_code_is_refused_and_audited_and_a_new_one_is_issued():
    now = [1000.0]
    store = SQLiteStore(":memory:")
    async with store:
        pairing = Pairing(store, ttl_s=600, clock=lambda: now[0])
        code = await pairing.issue("telegram:5")
        assert await pairing.pending("telegram:5") == 1600.0
        now[0] = 1601.0
        assert await pairing.pending("telegram:5") is None  # the bot will issue a new one
        assert (await pairing.approve(code, ADMIN)).reason == "expired"
        fresh = await pairing.issue("telegram:5")
        assert (await pairing.approve(code, ADMIN)).reason in ("wrong", "expired")  # the old code is gone
        assert (await pairing.approve(fresh, ADMIN)).user == "telegram:5"
        assert await pairing.is_approved("telegram:5")
        outcomes = [(e.outcome, e.detail.get("reason")) for e in await store.recent_audit(10) if e.action == "pairing approve"]
    assert ("denied", "expired") in outcomes and ("ok", None) in outcomes


async def test_the_pairing_texts_are_in_the_users_language():
    async with app_for({"pairing": True}) as bot:
        (text,) = await feed(bot, dataclasses.replace(make_event("你好", "telegram:8"), locale="zh-hans"))
    assert text.startswith("这个机器人需要管理员先批准。") and CODE.search(text)
