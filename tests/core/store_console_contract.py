"""The Store contract, part two: what the operator console asks (browse, search, page).

Star-imported by tests/core/store_contract.py, so every backend that runs the contract
runs these too. The ``store`` fixture is an open, empty Store on the real clock.
"""

from __future__ import annotations

import math
import time

import pytest

from core.errors import InputRejected
from core.events import ConversationKey

C_DM = ConversationKey("telegram", "7001")
C_GROUP = ConversationKey("telegram", "-7100")
C_DISCORD = ConversationKey("discord", "7200")
C_ANN, C_BOB, C_CAT = "telegram:7001", "telegram:7002", "discord:7003"


async def _say(store, key, user, text, reply=None):
    await store.touch_user(user)
    conversation = await store.active_conversation(key)
    message = await store.add_user_message(conversation.id, user, text)
    if reply is not None:
        await store.add_reply(message.id, reply)
    return conversation


async def test_console_find_users_by_id_or_name_newest_first(store):
    await store.touch_user(C_ANN, "Ann Lee")
    await store.touch_user(C_BOB, "小明")
    await store.touch_user(C_CAT, "100%_cat")
    await store.touch_user(C_ANN)  # Ann seen last
    assert [u.qualified_id for u in await store.find_users()][0] == C_ANN
    assert {u.qualified_id for u in await store.find_users()} == {C_ANN, C_BOB, C_CAT}
    assert [u.qualified_id for u in await store.find_users("ann")] == [C_ANN]  # ASCII case ignored
    assert [u.qualified_id for u in await store.find_users("小明")] == [C_BOB]
    assert [u.qualified_id for u in await store.find_users("discord:")] == [C_CAT]
    assert [u.qualified_id for u in await store.find_users("0%_")] == [C_CAT]
    assert await store.find_users("%") == await store.find_users("0%")  # wildcards are literal
    assert await store.find_users("nobody") == []
    page = await store.find_users(limit=2)
    rest = await store.find_users(limit=2, offset=2)
    assert len(page) == 2 and len(rest) == 1 and rest[0] not in page


async def test_console_find_conversations_by_each_filter(store):
    dm = await _say(store, C_DM, C_ANN, "I like green tea", "Nice!")
    group = await _say(store, C_GROUP, C_BOB, "今天天气很好")
    await _say(store, C_GROUP, C_ANN, "50% off <script>")
    discord = await _say(store, C_DISCORD, C_CAT, "hello there")
    everything = await store.find_conversations()
    assert [s.conversation.id for s in everything] == [discord.id, group.id, dm.id]  # newest first
    by_id = {s.conversation.id: s for s in everything}
    assert (by_id[dm.id].message_count, by_id[group.id].message_count, by_id[discord.id].message_count) == (2, 2, 1)
    assert by_id[dm.id].platform == "telegram" and by_id[dm.id].conversation.key == C_DM.qualified
    assert by_id[dm.id].last_at is not None and by_id[dm.id].last_at >= by_id[dm.id].conversation.started_at

    def ids(found):
        return [s.conversation.id for s in found]

    assert ids(await store.find_conversations(platform="discord")) == [discord.id]
    assert ids(await store.find_conversations(chat="-7100")) == [group.id]
    assert ids(await store.find_conversations(user=C_ANN)) == [group.id, dm.id]
    assert ids(await store.find_conversations(text="GREEN TEA")) == [dm.id]
    assert ids(await store.find_conversations(text="天气")) == [group.id]
    assert ids(await store.find_conversations(text="nice")) == [dm.id]  # the bot's turns count too
    assert ids(await store.find_conversations(text="%")) == [group.id]  # literal, not a wildcard
    assert ids(await store.find_conversations(user=C_ANN, platform="discord")) == []
    assert ids(await store.find_conversations(limit=1)) == [discord.id]
    assert ids(await store.find_conversations(before_id=discord.id, limit=1)) == [group.id]


async def test_console_conversation_summary_and_paged_turns(store):
    conversation = await _say(store, C_DM, C_ANN, "turn 0", "reply 0")
    for index in range(1, 5):
        await _say(store, C_DM, C_ANN, f"turn {index}", f"reply {index}")
    summary = await store.conversation_summary(conversation.id)
    assert summary.message_count == 10 and summary.conversation == conversation
    assert await store.conversation_summary(conversation.id + 999) is None
    first = await store.conversation_turns(conversation.id, limit=4)
    assert [m.text for m in first] == ["turn 0", "reply 0", "turn 1", "reply 1"]
    assert [m.role for m in first] == ["user", "assistant", "user", "assistant"]
    second = await store.conversation_turns(conversation.id, after_id=first[-1].id, limit=4)
    assert [m.text for m in second] == ["turn 2", "reply 2", "turn 3", "reply 3"]
    last = await store.conversation_turns(conversation.id, after_id=second[-1].id, limit=4)
    assert [m.text for m in last] == ["turn 4", "reply 4"]
    assert await store.conversation_turns(conversation.id, after_id=last[-1].id) == []
    with pytest.raises(InputRejected):
        await store.conversation_turns(conversation.id, limit=0)


async def test_console_find_audit_filters(store):
    await store.audit("web:operator", "ban", C_ANN, detail={"banned": True})
    await store.audit(C_BOB, "moderation input", "group", detail={"rules": ["words"]})
    await store.audit(C_BOB, "moderation output", "private", outcome="ok")
    await store.audit("web:operator", "forget", C_CAT, outcome="error")
    newest = await store.find_audit()
    assert [e.action for e in newest] == ["forget", "moderation output", "moderation input", "ban"]
    assert [e.action for e in await store.find_audit(action="moderation")] == ["moderation output", "moderation input"]
    assert [e.action for e in await store.find_audit(action="input")] == []  # a prefix, not a substring
    assert [e.target for e in await store.find_audit(actor="web:operator")] == [C_CAT, C_ANN]
    assert [e.action for e in await store.find_audit(outcome="error")] == ["forget"]
    assert [e.action for e in await store.find_audit(target="7001")] == ["ban"]
    assert (await store.find_audit(action="ban"))[0].detail == {"banned": True}
    page = await store.find_audit(limit=2)
    assert [e.action for e in await store.find_audit(before_id=page[-1].id)] == ["moderation input", "ban"]


async def test_console_activity_counts_turns_users_and_latency(store):
    since = time.time() - 1.0
    await _say(store, C_DM, C_ANN, "hi", "hello")
    await _say(store, C_GROUP, C_BOB, "yo", "hey")
    await _say(store, C_GROUP, C_ANN, "unanswered")
    until = time.time() + 1.0
    activity = await store.activity(since, until, bucket_s=0.5)
    assert len(activity.messages) == math.ceil((until - since) / 0.5)
    assert sum(activity.messages) == 5
    assert (activity.active_users, activity.active_conversations) == (2, 2)
    assert len(activity.reply_seconds) == 2 and all(seconds >= 0 for seconds in activity.reply_seconds)
    empty = await store.activity(until + 10, until + 70)
    assert (empty.messages, empty.active_users, empty.reply_seconds) == ((0,), 0, ())
    with pytest.raises(InputRejected):
        await store.activity(until, since)
