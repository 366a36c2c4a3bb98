"""The behaviour every Store implementation must have.

Reuse: in your test module, provide an async ``store`` fixture that yields an open,
empty Store, then ``from tests.core.store_contract import *``. pytest collects the
test functions below from your module (this file's name keeps pytest from running
it alone).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from core.errors import InputRejected, NotFound
from core.events import ConversationKey
from core.records import Profile

DM = ConversationKey("telegram", "1001")
GROUP = ConversationKey("telegram", "-500")
TOPIC = ConversationKey("telegram", "-500", "7")
DISCORD = ConversationKey("discord", "42")
ANN, BOB, CAT = "telegram:1001", "telegram:2002", "discord:3003"

TRICKY_TEXTS = [
    "你好，世界！我叫小明。",
    "emoji 👩‍👩‍👧‍👦 🇯🇵 🤖",
    "مرحبا بالعالم",  # right to left
    "שלום\u200f עולם",  # RTL with a mark
    "zero\u200bwidth and NUL \x00 inside",
    "e\u0301 (combining) vs é (precomposed)",
    "'; DROP TABLE messages; --",
    "%_ like wildcards \\ and \"quotes\"",
    "",
]


async def _turn(store, key, user, text, reply=None):
    """Store a user turn (and a reply) the way ChatService does."""
    await store.touch_user(user)
    conversation = await store.active_conversation(key)
    message = await store.add_user_message(conversation.id, user, text)
    answer = await store.add_reply(message.id, reply) if reply is not None else None
    return conversation, message, answer


# -- events and users -------------------------------------------------------------------


async def test_duplicate_event_is_reported(store):
    assert await store.record_event("telegram:update:1") is True
    assert await store.record_event("telegram:update:1") is False
    assert await store.record_event("telegram:update:2") is True
    assert await store.record_event("discord:message:1") is True


async def test_touch_user_creates_then_counts_and_keeps_the_name(store):
    first = await store.touch_user(ANN, "Ann")
    assert (first.qualified_id, first.display_name, first.message_count, first.banned) == (ANN, "Ann", 1, False)
    await store.touch_user(ANN)  # no name given: the known one stays
    again = await store.touch_user(ANN, "Annie")
    assert (again.display_name, again.message_count) == ("Annie", 3)
    assert again.first_seen == first.first_seen and again.last_seen >= first.last_seen
    assert await store.get_user(ANN) == again
    assert await store.get_user(BOB) is None


async def test_ban_flag(store):
    assert await store.is_banned(BOB) is False
    await store.set_banned(BOB, True)  # banned before ever writing
    assert await store.is_banned(BOB) is True
    assert (await store.touch_user(BOB)).banned is True
    await store.set_banned(BOB, False)
    assert await store.is_banned(BOB) is False
    assert (await store.get_user(BOB)).banned is False


# -- profiles, settings, personas -------------------------------------------------------------


async def test_profile_defaults_then_round_trips(store):
    empty = await store.get_profile(ANN)
    assert (empty.qualified_id, empty.preferences, empty.consent, empty.interest) == (ANN, {}, {}, None)
    saved = Profile(ANN, {"name": "小明", "language": "zh"}, {"training": True}, (0.25, -1.5, 3.0), 4)
    await store.save_profile(saved)
    loaded = await store.get_profile(ANN)
    assert loaded.preferences == saved.preferences and loaded.consent == saved.consent
    assert loaded.interest == pytest.approx(saved.interest) and loaded.interest_count == 4
    await store.save_profile(Profile(ANN, {"tone": "formal"}, {"training": False}))
    replaced = await store.get_profile(ANN)
    assert (replaced.preferences, replaced.consent, replaced.interest) == ({"tone": "formal"}, {"training": False}, None)


async def test_profile_rejects_non_boolean_consent(store):
    with pytest.raises(InputRejected):
        await store.save_profile(Profile(ANN, {}, {"training": "yes"}))  # type: ignore[dict-item]
    assert (await store.get_profile(ANN)).consent == {}


async def test_settings_set_get_delete(store):
    assert await store.get_setting("chat:telegram:-500", "persona") is None
    await store.set_setting("chat:telegram:-500", "persona", "tutor")
    await store.set_setting("bot", "persona", "companion")
    assert await store.get_setting("chat:telegram:-500", "persona") == "tutor"
    await store.set_setting("chat:telegram:-500", "persona", "support")
    assert await store.get_setting("chat:telegram:-500", "persona") == "support"
    await store.set_setting("chat:telegram:-500", "persona", None)
    assert await store.get_setting("chat:telegram:-500", "persona") is None
    assert await store.get_setting("bot", "persona") == "companion"


async def test_personas(store):
    assert await store.list_personas() == []
    await store.upsert_persona("tutor", {"name": "Tutor", "greeting": "你好", "examples": [["hi", "hello"]]})
    await store.upsert_persona("companion", {"name": "Companion"})
    await store.upsert_persona("tutor", {"name": "Tutor 2"})
    assert await store.list_personas() == ["companion", "tutor"]
    assert await store.get_persona("tutor") == {"name": "Tutor 2"}
    assert await store.get_persona("nobody") is None
    with pytest.raises(InputRejected):
        await store.upsert_persona("bad", {"x": object()})


# -- conversations and history ---------------------------------------------------------


async def test_active_conversation_is_stable_and_per_key(store):
    dm = await store.active_conversation(DM)
    assert (dm.key, dm.active, dm.persona) == (DM.qualified, True, None)
    assert await store.active_conversation(DM) == dm
    keys = {(await store.active_conversation(key)).id for key in (DM, GROUP, TOPIC, DISCORD)}
    assert len(keys) == 4


async def test_concurrent_first_use_creates_one_conversation(store):
    found = await asyncio.gather(*(store.active_conversation(GROUP) for _ in range(20)))
    assert len({conversation.id for conversation in found}) == 1


async def test_history_is_oldest_first_and_limit_takes_the_newest(store):
    conversation = await store.active_conversation(DM)
    texts = []
    for i in range(6):
        user = await store.add_user_message(conversation.id, ANN, f"q{i}")
        await store.add_reply(user.id, f"a{i}")
        texts += [f"q{i}", f"a{i}"]
    full = await store.history(conversation.id, limit=100)
    assert [m.text for m in full] == texts
    assert [m.role for m in full[:2]] == ["user", "assistant"]
    assert [m.text for m in await store.history(conversation.id, limit=3)] == texts[-3:]
    assert await store.history(conversation.id, limit=0) == []
    other = await store.active_conversation(GROUP)
    assert await store.history(other.id) == []


async def test_reset_keeps_old_history_and_starts_empty(store):
    old, _, _ = await _turn(store, DM, ANN, "before", "reply")
    await store.set_conversation_persona(old.id, "tutor")
    new = await store.reset_conversation(DM)
    assert new.id != old.id and new.active and new.persona == "tutor"
    assert await store.active_conversation(DM) == new
    assert await store.history(new.id) == []
    assert [m.text for m in await store.history(old.id)] == ["before", "reply"]
    fresh = await store.reset_conversation(GROUP)  # nothing open yet: just starts one
    assert await store.active_conversation(GROUP) == fresh


async def test_conversation_persona_and_unknown_ids(store):
    conversation = await store.active_conversation(DM)
    await store.set_conversation_persona(conversation.id, "tutor")
    assert (await store.active_conversation(DM)).persona == "tutor"
    await store.set_conversation_persona(conversation.id, None)
    assert (await store.active_conversation(DM)).persona is None
    with pytest.raises(NotFound):
        await store.set_conversation_persona(999_999, "tutor")
    with pytest.raises(NotFound):
        await store.add_user_message(999_999, ANN, "hello")


async def test_add_reply_marks_the_user_turn_answered(store):
    conversation, user_turn, reply = await _turn(store, DM, ANN, "q", "a")
    assert not user_turn.answered
    assert (reply.role, reply.user_id, reply.conversation_id) == ("assistant", None, conversation.id)
    stored_turn, stored_reply = await store.history(conversation.id)
    assert stored_turn.answered and stored_turn.id == user_turn.id and stored_reply.id == reply.id
    with pytest.raises(NotFound):
        await store.add_reply(999_999, "to nobody")
    with pytest.raises(NotFound):
        await store.add_reply(reply.id, "a reply to a reply")
    assert len(await store.history(conversation.id)) == 2


async def test_unanswered_is_exactly_the_turns_without_reply(store):
    _, answered, _ = await _turn(store, DM, ANN, "answered", "ok")
    _, open_dm, _ = await _turn(store, DM, ANN, "pending in DM")
    _, open_topic, _ = await _turn(store, TOPIC, BOB, "pending in topic")
    _, open_discord, _ = await _turn(store, DISCORD, CAT, "pending on discord")
    pending = await store.unanswered("telegram")
    assert [(m.id, key) for m, key in pending] == [(open_dm.id, DM.qualified), (open_topic.id, TOPIC.qualified)]
    assert [m.text for m, _ in pending] == ["pending in DM", "pending in topic"]
    assert [m.id for m, _ in await store.unanswered("discord")] == [open_discord.id]
    assert await store.unanswered("telegram", since=open_topic.created_at + 1) == []
    await store.add_reply(open_dm.id, "late answer")
    assert [m.id for m, _ in await store.unanswered("telegram")] == [open_topic.id]
    assert answered.id not in [m.id for m, _ in await store.unanswered("telegram")]


async def test_consented_conversations_honour_every_author(store):
    await store.save_profile(Profile(ANN, consent={"training": True}))
    await store.save_profile(Profile(BOB, consent={"training": False, "research": True}))
    dm, _, _ = await _turn(store, DM, ANN, "mine", "ok")
    await _turn(store, GROUP, ANN, "group", "ok")
    await _turn(store, GROUP, BOB, "bob too", "ok")  # Bob did not consent: the group is out
    await _turn(store, DISCORD, CAT, "no profile at all", "ok")
    conversations = await store.consented_conversations("training")
    assert [[m.text for m in c] for c in conversations] == [["mine", "ok"]]
    assert conversations[0][0].conversation_id == dm.id
    await store.save_profile(Profile(BOB, consent={"training": True}))
    assert len(await store.consented_conversations("training")) == 2
    assert await store.consented_conversations("research") == []


# -- memories ---------------------------------------------------------------------------


async def test_new_memory_supersedes_same_subject(store):
    paris = await store.add_memory(ANN, "home", "I live in Paris", [0.5, 0.25], "private")
    await store.add_memory(ANN, "allergy", "I am allergic to nuts", None, "private")
    bobs = await store.add_memory(BOB, "home", "Bob lives in Rome", None, "group")
    berlin = await store.add_memory(ANN, "home", "I moved to Berlin", [1.0, 0.0], "group")
    live = await store.memories(ANN)
    assert [m.text for m in live] == ["I am allergic to nuts", "I moved to Berlin"]
    everything = await store.memories(ANN, include_superseded=True)
    assert {m.id: m.superseded_by for m in everything}[paris.id] == berlin.id
    assert [m.embedding for m in everything if m.id == paris.id] == [pytest.approx((0.5, 0.25))]
    assert [m.id for m in await store.memories(BOB)] == [bobs.id]
    assert berlin.scope == "group" and berlin.superseded_by is None


async def test_memories_without_subject_never_supersede(store):
    await store.add_memory(ANN, "", "likes tea", None, "private")
    await store.add_memory(ANN, "", "likes jazz", None, "private")
    assert len(await store.memories(ANN)) == 2


async def test_delete_memory_only_deletes_the_callers_own(store):
    mine = await store.add_memory(ANN, "name", "我叫小明", None, "private")
    assert await store.delete_memory(BOB, mine.id) is False
    assert [m.id for m in await store.memories(ANN)] == [mine.id]
    assert await store.delete_memory(ANN, mine.id) is True
    assert await store.delete_memory(ANN, mine.id) is False
    assert await store.memories(ANN, include_superseded=True) == []


async def test_deleting_a_fact_deletes_its_older_versions(store):
    await store.add_memory(ANN, "home", "Paris", None, "private")
    newest = await store.add_memory(ANN, "home", "Berlin", None, "private")
    keep = await store.add_memory(ANN, "pet", "a cat", None, "private")
    assert await store.delete_memory(ANN, newest.id)
    assert [m.id for m in await store.memories(ANN, include_superseded=True)] == [keep.id]


async def test_memory_ids_are_never_reused_after_deletion(store):
    first = await store.add_memory(ANN, "home", "Paris", None, "private")
    newest = await store.add_memory(ANN, "pet", "a cat", None, "private")
    assert await store.delete_memory(ANN, newest.id)  # the highest id goes
    assert await store.delete_memory(ANN, first.id)
    again = await store.add_memory(ANN, "pet", "a dog", None, "private")
    assert again.id > newest.id  # a /memory forget ID of the old fact never hits the new one


async def test_a_memory_keeps_the_turn_it_was_learned_from(store):
    _, turn, _ = await _turn(store, DM, ANN, "I moved to Berlin")
    learned = await store.add_memory(ANN, "home", "I live in Berlin.", None, "private", source_message_id=turn.id)
    plain = await store.add_memory(ANN, "pet", "a cat", None, "private")
    assert (learned.source_message_id, plain.source_message_id) == (turn.id, None)
    assert [m.source_message_id for m in await store.memories(ANN)] == [turn.id, None]


async def test_memory_input_is_checked(store):
    with pytest.raises(InputRejected):
        await store.add_memory(ANN, "home", "x", None, "public")
    with pytest.raises(InputRejected):
        await store.add_memory(ANN, "home", "x", [float("nan")], "private")
    assert await store.memories(ANN) == []


# -- audit, identities, privacy, stats -----------------------------------------------


async def test_audit_is_newest_first(store):
    for i in range(5):
        await store.audit("telegram:9", f"action{i}", ANN, detail={"n": i, "note": "备注"})
    await store.audit("system", "startup", outcome="error")
    recent = await store.recent_audit(limit=3)
    assert [e.action for e in recent] == ["startup", "action4", "action3"]
    assert recent[0].outcome == "error" and recent[1].detail == {"n": 4, "note": "备注"}
    assert len(await store.recent_audit(limit=100)) == 6
    with pytest.raises(InputRejected):
        await store.audit("system", "x", outcome="maybe")


async def test_a_ban_on_any_linked_identity_is_found_in_one_read(store):
    assert await store.banned_identity(ANN) is None
    await store.link_identities(ANN, CAT)
    await store.set_banned(CAT, True)
    assert [await store.banned_identity(who) for who in (ANN, CAT, BOB)] == [CAT, CAT, None]
    await store.set_banned(ANN, True)
    assert await store.banned_identity(CAT) == min(ANN, CAT)  # the first of the group, sorted
    await store.set_banned(BOB, True)
    await store.forget_user(BOB)  # a forgotten ban still holds (kept as a hash of the id)
    assert await store.banned_identity(BOB) == BOB and await store.get_user(BOB) is None
    await store.set_banned(ANN, False)
    await store.set_banned(CAT, False)
    assert await store.banned_identity(ANN) is None


async def test_identity_links_form_groups(store):
    assert await store.linked_identities(ANN) == [ANN]
    assert await store.link_identities(ANN, CAT) == sorted([ANN, CAT])
    assert await store.link_identities(BOB, "discord:4004") == sorted([BOB, "discord:4004"])
    merged = sorted([ANN, BOB, CAT, "discord:4004"])
    assert await store.link_identities(CAT, BOB) == merged
    assert await store.linked_identities("discord:4004") == merged
    assert await store.link_identities(ANN, ANN) == merged  # already one person: nothing changes
    assert await store.unlink_identity(BOB) is True
    assert await store.unlink_identity(BOB) is False
    assert await store.linked_identities(BOB) == [BOB]
    assert await store.linked_identities(ANN) == sorted([ANN, CAT, "discord:4004"])
    await store.unlink_identity(ANN)
    await store.unlink_identity(CAT)  # the last member alone is no group
    assert await store.linked_identities("discord:4004") == ["discord:4004"]


async def _populate_ann(store):
    await store.touch_user(ANN, "Ann")
    await store.save_profile(Profile(ANN, {"name": "Ann", "language": "zh"}, {"training": True}, (1.0, 0.0), 1))
    await store.add_memory(ANN, "home", "Paris", [0.5, 0.5], "private")
    await store.add_memory(ANN, "home", "Berlin", None, "private")
    await _turn(store, DM, ANN, "我的秘密", "好的")
    await _turn(store, GROUP, ANN, "hello group", "hi Ann")
    await _turn(store, GROUP, BOB, "Bob here", "hi Bob")
    await store.link_identities(ANN, CAT)
    await store.audit(ANN, "forget_request", ANN)
    await store.audit("telegram:9", "ban", ANN, detail={"reason": "spam"})
    await store.audit("telegram:9", "ban", BOB)


async def test_export_user_contains_everything_about_them(store):
    await _populate_ann(store)
    data = await store.export_user(ANN)
    json.dumps(data)  # JSON-serialisable
    assert data["user"]["display_name"] == "Ann"
    assert data["profile"]["preferences"] == {"name": "Ann", "language": "zh"}
    assert data["profile"]["consent"] == {"training": True}
    assert [m["text"] for m in data["memories"]] == ["Paris", "Berlin"]
    assert [m["text"] for m in data["messages"]] == ["我的秘密", "好的", "hello group", "hi Ann"]
    assert data["linked_identities"] == sorted([ANN, CAT])
    assert [(e["actor"], e["action"]) for e in data["audit"]] == [(ANN, "forget_request"), ("telegram:9", "ban")]


async def test_forget_user_removes_them_and_only_them(store):
    await _populate_ann(store)
    bob_before = await store.export_user(BOB)
    counts = await store.forget_user(ANN)
    assert counts["messages"] == 4 and counts["memories"] == 2 and counts["users"] == 1
    data = await store.export_user(ANN)
    assert data["user"] is None and data["memories"] == [] and data["messages"] == [] and data["audit"] == []
    assert data["profile"]["preferences"] == {} and data["linked_identities"] == [ANN]
    assert await store.get_user(ANN) is None and await store.memories(ANN, include_superseded=True) == []
    assert await store.linked_identities(CAT) == [CAT]
    assert await store.export_user(BOB) == bob_before
    group = await store.active_conversation(GROUP)
    assert [m.text for m in await store.history(group.id)] == ["Bob here", "hi Bob"]
    assert await store.unanswered("telegram") == []


async def test_forgetting_does_not_lift_a_ban(store):
    await store.touch_user(BOB)
    await store.set_banned(BOB, True)
    await store.forget_user(BOB)
    assert await store.get_user(BOB) is None
    assert await store.is_banned(BOB) is True
    assert (await store.touch_user(BOB)).banned is True
    await store.set_banned(BOB, False)
    await store.forget_user(BOB)
    assert await store.is_banned(BOB) is False


async def test_stats_count_rows(store):
    await _turn(store, DM, ANN, "q", "a")
    await _turn(store, GROUP, BOB, "pending")
    await store.add_memory(ANN, "home", "Paris", None, "private")
    await store.add_memory(ANN, "home", "Berlin", None, "private")
    await store.upsert_persona("tutor", {})
    await store.set_banned(CAT, True)
    await store.audit("system", "startup")
    await store.record_event("e1")
    stats = await store.stats()
    expected = {"users": 3, "banned_users": 1, "conversations": 2, "messages": 3, "unanswered": 1,
                "memories": 1, "personas": 1, "audit_entries": 1, "processed_events": 1}
    assert {name: stats[name] for name in expected} == expected


# -- text, retention, concurrency ----------------------------------------------------


async def test_unicode_round_trips(store):
    conversation = await store.active_conversation(ConversationKey("telegram", "用户"))
    for text in TRICKY_TEXTS:
        if text:
            assert (await store.touch_user("telegram:用户", text)).display_name == text
        stored = await store.add_user_message(conversation.id, "telegram:用户", text)
        assert stored.text == text
        await store.set_setting("chat:telegram:用户", text, text)
        assert await store.get_setting("chat:telegram:用户", text) == text
        memory = await store.add_memory("telegram:用户", "", text, None, "private")
        assert memory.text == text
    assert [m.text for m in await store.history(conversation.id, limit=100)] == TRICKY_TEXTS


async def test_lone_surrogates_are_replaced_not_fatal(store):
    conversation = await store.active_conversation(DM)
    stored = await store.add_user_message(conversation.id, ANN, "bad \ud800 pair \ud83d\ude00 end \udfff")
    expected = "bad \ufffd pair 😀 end \ufffd"
    assert stored.text == expected
    assert [m.text for m in await store.history(conversation.id)] == [expected]
    await store.upsert_persona("p", {"greeting": "\udc00"})
    assert await store.get_persona("p") == {"greeting": "\ufffd"}


async def test_delete_messages_before(store):
    turns = [await _turn(store, key, user, text, "re " + text) for key, user, text in
             [(DM, ANN, "first"), (GROUP, BOB, "second"), (DM, ANN, "third")]]
    cutoff = turns[1][1].created_at
    # A message goes if it is older than the cutoff, and a reply goes with its user turn.
    gone = {m.text for _, user, reply in turns for m in (user, reply)
            if m.created_at < cutoff or user.created_at < cutoff}
    assert await store.delete_messages_before(0.0) == 0
    assert await store.delete_messages_before(cutoff) == len(gone)
    left = [m.text for key in (DM, GROUP) for m in await store.history((await store.active_conversation(key)).id)]
    assert sorted(left) == sorted({"first", "re first", "second", "re second", "third", "re third"} - gone)
    assert await store.delete_messages_before(turns[2][2].created_at + 3600) == len(left)
    assert (await store.stats())["messages"] == 0


async def test_concurrent_writers_all_persist(store):
    keys = [ConversationKey("telegram", str(i)) for i in range(10)]

    async def chat(key):
        for turn in range(5):
            await _turn(store, key, f"telegram:{key.chat_id}", f"{key.chat_id}:{turn}", f"re {turn}")

    await asyncio.gather(*(chat(key) for key in keys))
    for key in keys:
        conversation = await store.active_conversation(key)
        texts = [m.text for m in await store.history(conversation.id, limit=100)]
        assert texts == [t for turn in range(5) for t in (f"{key.chat_id}:{turn}", f"re {turn}")]
    assert (await store.stats())["unanswered"] == 0


async def test_a_failing_call_does_not_disturb_concurrent_ones(store):
    conversation = await store.active_conversation(DM)
    results = await asyncio.gather(
        store.add_user_message(conversation.id, ANN, "one"),
        store.add_reply(999_999, "bad"),
        store.add_user_message(999_999, ANN, "bad"),
        store.add_user_message(conversation.id, ANN, "two"),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["StoredMessage", "NotFound", "NotFound", "StoredMessage"]
    assert [m.text for m in await store.history(conversation.id)] == ["one", "two"]


from tests.core.store_console_contract import *  # noqa: E402, F403  (part two: the console's queries)

__all__ = [name for name in dir() if name.startswith("test_")]


# -- one write and one read per turn ------------------------------------------------------


async def test_begin_turn_stores_what_the_three_calls_store(store):
    first = await store.begin_turn(DM, ANN, "Ann", "你好 first", "telegram:update:10")
    again = await store.begin_turn(DM, ANN, "", "second")
    assert first.conversation == again.conversation == await store.active_conversation(DM)
    assert (first.user_turn.role, first.user_turn.user_id, first.user_turn.text, first.user_turn.event_id) == (
        "user", ANN, "你好 first", "telegram:update:10")
    assert [m.text for m in await store.history(first.conversation.id)] == ["你好 first", "second"]
    user = await store.get_user(ANN)
    assert (user.display_name, user.message_count) == ("Ann", 2)
    other = await store.begin_turn(GROUP, BOB, "Bob", "hi")
    assert other.conversation.id != first.conversation.id


async def test_begin_turn_after_a_reset_uses_the_new_conversation(store):
    first = await store.begin_turn(DM, ANN, "Ann", "old")
    fresh = await store.reset_conversation(DM)
    turn = await store.begin_turn(DM, ANN, "Ann", "new")
    assert turn.conversation.id == fresh.id != first.conversation.id


async def test_turn_context_returns_what_the_separate_reads_return(store):
    conversation, _, _ = await _turn(store, DM, ANN, "one", "reply one")
    for text in TRICKY_TEXTS:
        await _turn(store, DM, ANN, text, f"re: {text}")
    await store.save_profile(Profile(ANN, {"name": "Ann", "language": "zh"}, {"training": True}, (0.5, -1.0), 3))
    await store.set_setting("bot", "persona", "tutor")
    await store.set_setting("chat:telegram:1001", "persona", "friend")
    await store.set_setting("chat:telegram:1001", "other", "x")
    scopes = ["chat:telegram:1001", "space:telegram:9", "bot"]
    for limit in (0, 1, 5, 100):
        context = await store.turn_context(conversation.id, ANN, "persona", scopes, limit)
        assert context.profile == await store.get_profile(ANN)
        assert context.settings == {
            scope: value for scope in scopes if (value := await store.get_setting(scope, "persona")) is not None}
        assert list(context.history) == await store.history(conversation.id, limit)


async def test_turn_context_of_a_new_user_is_empty(store):
    conversation = await store.active_conversation(GROUP)
    context = await store.turn_context(conversation.id, CAT, "persona", [], 10)
    assert (context.profile, context.settings, context.history) == (Profile(CAT), {}, ())
