"""The Dispatcher, middlewares, router, commands and ChatService, through the ports."""

import pytest

from core.dispatcher import Route
from core.errors import GenerationError
from core.events import ChatKind, Chunk
from tests.conftest import make_event, make_settings
from tests.fakes import RecordingOutbox


async def history_texts(app, event):
    conversation = await app.store.active_conversation(event.key)
    return [(m.role, m.text) for m in await app.store.history(conversation.id)]


async def test_a_chat_message_is_answered_and_both_turns_are_stored(app, outbox):
    event = make_event("hi! 你好 👋")
    await app.dispatcher.feed(event, outbox)
    assert outbox.texts == ["Hello there, friend!"]
    assert await history_texts(app, event) == [("user", "hi! 你好 👋"), ("assistant", "Hello there, friend!")]


async def test_a_redelivered_update_is_answered_once(app, outbox):
    event = make_event("hello", event_id="telegram:update:7")
    await app.dispatcher.feed(event, outbox)
    await app.dispatcher.feed(event, outbox)
    assert len(outbox.texts) == 1
    assert len(await history_texts(app, event)) == 2


async def test_unknown_command_hints_at_help(app, outbox):
    await app.dispatcher.feed(make_event("/frobnicate now"), outbox)
    assert "/help" in outbox.last


async def test_non_admin_cannot_ban_and_the_refusal_is_audited(app, outbox):
    await app.dispatcher.feed(make_event("/admin ban telegram:5", user="telegram:1"), outbox)
    assert "admins" in outbox.last
    assert not await app.store.is_banned("telegram:5")
    entries = await app.store.recent_audit(5)
    assert (entries[0].actor, entries[0].action, entries[0].outcome) == ("telegram:1", "admin ban", "denied")


async def test_admin_ban_silences_the_user_and_is_audited(app, outbox):
    await app.dispatcher.feed(make_event("/admin ban telegram:5", user="telegram:999"), outbox)
    assert "Banned telegram:5" in outbox.last
    before = len(outbox.log)
    await app.dispatcher.feed(make_event("hello?", user="telegram:5"), outbox)
    assert len(outbox.log) == before
    entry = (await app.store.recent_audit(1))[0]
    assert (entry.action, entry.target, entry.outcome) == ("admin ban", "telegram:5", "ok")
    await app.dispatcher.feed(make_event("/admin unban 5", user="telegram:999"), outbox)
    assert not await app.store.is_banned("telegram:5")


async def test_a_ban_on_a_linked_identity_silences_the_other_and_its_recovered_turns(app, outbox):
    await app.store.link_identities("telegram:5", "discord:6")
    await app.store.set_banned("discord:6", True)
    await app.dispatcher.feed(make_event("hello?", user="telegram:5"), outbox)
    assert outbox.log == []
    assert await app.is_banned("telegram:5")  # what the adapters ask before re-answering a crash's turns
    assert not await app.is_banned("telegram:7")


async def test_admin_command_with_bad_arguments_shows_usage(app, outbox):
    await app.dispatcher.feed(make_event("/admin ban", user="telegram:999"), outbox)
    assert outbox.last.startswith("Usage: /admin ban USER")


@pytest.mark.parametrize("text", ["", "   \n\t ", "\u200b\u200b", "\x00\x01"])
async def test_empty_messages_get_a_short_answer_and_nothing_is_stored(app, outbox, text):
    event = make_event(text)
    await app.dispatcher.feed(event, outbox)
    assert outbox.texts == ["Please send me some text."]
    assert await history_texts(app, event) == []


async def test_oversized_message_is_cut_with_a_notice(app, outbox):
    event = make_event("字" * 100_000)
    await app.dispatcher.feed(event, outbox)
    assert "first 4000 characters" in outbox.texts[0]
    stored = await history_texts(app, event)
    assert stored[0] == ("user", "字" * 4000)


async def test_a_flooding_user_is_told_once_per_window(outbox):
    from bots.app_factory import bot_app
    from core.generation.scripted import ScriptedGenerator
    from core.storage.sqlite import SQLiteStore

    settings = make_settings(limits={"user_burst": 2, "user_messages_per_minute": 1})
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator(["ok"]), features=[]) as app:
        for _ in range(6):
            await app.dispatcher.feed(make_event("spam"), outbox)
    notices = [text for text in outbox.texts if "too fast" in text]
    assert outbox.texts.count("ok") == 2 and len(notices) == 1


async def test_groups_ignore_messages_not_addressed_to_the_bot(app, outbox):
    event = make_event("chatting among ourselves", chat="-100", kind=ChatKind.GROUP, addressed=False)
    await app.dispatcher.feed(event, outbox)
    assert outbox.log == [] and await history_texts(app, event) == []


async def test_persona_switch_and_reset(app, outbox):
    await app.dispatcher.feed(make_event("/persona tutor"), outbox)
    assert "Tutor" in outbox.last
    await app.dispatcher.feed(make_event("/persona"), outbox)
    assert outbox.last.startswith("Current persona: Tutor")
    await app.dispatcher.feed(make_event("/persona pirate"), outbox)
    assert "Available: assistant, companion, support, tutor" in outbox.last
    event = make_event("remember this")
    await app.dispatcher.feed(event, outbox)
    await app.dispatcher.feed(make_event("/reset"), outbox)
    assert await history_texts(app, event) == []


async def test_admin_sets_default_persona_for_a_chat(app, outbox):
    admin = make_event("/admin persona-default support chat", user="telegram:999", chat="-5", kind=ChatKind.GROUP)
    await app.dispatcher.feed(admin, outbox)
    member = make_event("/persona", user="telegram:2", chat="-5", kind=ChatKind.GROUP)
    await app.dispatcher.feed(member, outbox)
    assert outbox.last.startswith("Current persona: Support agent")


async def test_help_shows_admin_commands_only_to_admins(app, outbox):
    await app.dispatcher.feed(make_event("/help"), outbox)
    assert "/persona" in outbox.last and "/admin ban" not in outbox.last
    await app.dispatcher.feed(make_event("/help", user="telegram:999"), outbox)
    assert "/admin ban USER" in outbox.last


class FailingGenerator:
    name = "failing"
    context_window = 512

    def count_tokens(self, messages):
        return sum(len(m.content) for m in messages) // 4

    async def stream(self, request):
        yield Chunk("partial ")
        raise GenerationError("backend exploded")

    async def health(self):
        return {}

    async def aclose(self):
        return None


async def test_a_generation_failure_apologises_and_the_turn_is_still_stored(settings, outbox):
    from bots.app_factory import bot_app
    from core.storage.sqlite import SQLiteStore

    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=FailingGenerator(), features=[]) as app:
        event = make_event("hello")
        await app.dispatcher.feed(event, outbox)
        assert outbox.texts == [GenerationError.user_message]
        assert await app.store.unanswered("telegram") == []
        assert (await history_texts(app, event))[0] == ("user", "hello")


async def test_the_chain_is_visible_and_routes_match_in_order(app, outbox):
    assert app.dispatcher.describe() == [
        "recovery:dedupe",
        "access:drop_banned",
        "access:locale",
        "limits:merge_bursts",
        "limits:rate_limit",
        "input:input_limits",
        "route:command",
        "route:chat",
    ]
    seen = []

    async def faq(ctx):
        seen.append(ctx.event.text)
        await ctx.reply("FAQ answer")

    app.seams.routes.add(Route("faq", lambda ctx: "refund" in ctx.event.text, faq), before="chat")
    await app.dispatcher.feed(make_event("how do I get a refund?"), outbox)
    assert seen == ["how do I get a refund?"] and outbox.last == "FAQ answer"


async def test_an_unexpected_error_gets_an_apology_not_a_crash(app, outbox):
    async def broken(ctx):
        raise RuntimeError("bug")

    app.seams.routes.add(Route("broken", lambda ctx: True, broken), before="command")
    await app.dispatcher.feed(make_event("anything"), outbox)
    assert outbox.last == "Sorry, something went wrong. Please try again."


async def test_streamed_reply_finishes_with_full_text():
    from bots.app_factory import bot_app
    from core.generation.scripted import ScriptedGenerator
    from core.storage.sqlite import SQLiteStore

    long_reply = " ".join(f"word{i}" for i in range(400))
    settings = make_settings(model={"backend": "scripted", "generation": {"max_new_tokens": 1000}})
    outbox = RecordingOutbox(max_message_length=200, interval=0.0)
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=ScriptedGenerator([long_reply]), features=[]) as app:
        await app.dispatcher.feed(make_event("tell me a long story"), outbox)
    assert len(outbox.texts) > 1 and all(len(text) <= 200 for text in outbox.texts)
    assert " ".join(outbox.texts).split() == long_reply.split()
