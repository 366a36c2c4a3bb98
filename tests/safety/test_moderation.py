"""Moderation: matching rules, per-context actions, personas, streamed output, logging."""

import dataclasses
import logging

import pytest

from core.errors import ConfigError
from core.events import ChatKind, ConversationKey
from core.safety.config import Action, ModerationSettings, WordLists
from core.safety.moderation import Finding, Moderator, WordMatcher, fold, redact, sanitize_outgoing
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.safety.conftest import safe_app, stored_turns

DM = ConversationKey("telegram", "1")
GROUP = ConversationKey("telegram", "-100")


def hits(lists: WordLists, text: str) -> list[str]:
    """The original substrings each finding covers."""
    folded, index = fold(text)
    return [text[f.span[0] : f.span[1]] for f in WordMatcher(lists, "").find(folded, index)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("this is BAD.", ["BAD"]),
        ("a badge is fine", []),
        ("ＢＡＤ！", ["ＢＡＤ"]),  # full-width letters fold to ASCII
        ("b\u200bad idea", ["b\u200bad"]),  # a zero-width space does not hide the word
        ("你是笨蛋吗？", ["笨蛋"]),  # no spaces in Chinese: matched inside the sentence
        ("STRASSE and Straße", ["STRASSE", "Straße"]),  # ß folds to ss
        ("very   bad   words", ["bad   words"]),  # a listed phrase matches across any spaces
    ],
)
def test_words_match_whole_words_in_any_form(text, expected):
    lists = WordLists(words=("bad", "笨蛋", "strasse", "bad words"))
    assert sorted(hits(lists, text)) == sorted(expected)


def test_patterns_ignore_case_and_run_on_folded_text():
    lists = WordLists(patterns=(r"kill\s+yourself", r"\d{4}-\d{4}-\d{4}-\d{4}"))
    assert hits(lists, "KILL    Yourself") == ["KILL    Yourself"]
    assert hits(lists, "card ４２４２-4242-4242-4242 ok") == ["４２４２-4242-4242-4242"]


def test_redaction_blacks_out_exactly_the_original_characters():
    text = "你是笨蛋吗 and Straße 👋"
    lists = WordLists(words=("笨蛋", "strasse"))
    folded, index = fold(text)
    redacted = redact(text, WordMatcher(lists, "").find(folded, index))
    assert redacted == "你是██吗 and ██████ 👋"
    assert len(redacted) == len(text)


def test_a_classifier_finding_cannot_be_redacted_so_it_is_refused():
    located, unlocated = Finding("words", (0, 3)), Finding("classifier:toxic")
    assert Moderator.effective(Action.REDACT, [located]) is Action.REDACT
    assert Moderator.effective(Action.REDACT, [located, unlocated]) is Action.REFUSE
    assert Moderator.effective(Action.LOG, [unlocated]) is Action.LOG


def test_outgoing_text_loses_control_characters_and_lone_surrogates():
    assert sanitize_outgoing("ok\x1b[2J\x00 done\ud800!\n") == "ok[2J done\ufffd!\n"
    assert sanitize_outgoing("\x07\x08") == "…"


def test_invalid_configuration_names_the_field():
    with pytest.raises(ValueError, match="patterns"):
        ModerationSettings(patterns=("(unclosed",))


SAFETY = {
    "moderation": {
        "words": ["badword", "笨蛋"],
        "group": {"input": "refuse", "output": "refuse", "words": ["darn"]},
        "personas": {"tutor": {"words": ["cheatsheet"]}},
    }
}


async def test_dm_input_is_logged_and_answered_without_the_text_in_the_log(caplog):
    caplog.set_level(logging.WARNING, logger="core.safety")
    async with safe_app(safety=SAFETY) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("you badword 笨蛋"), outbox)
        assert outbox.texts == ["Hello there, friend!"]
        assert (await stored_turns(app, DM))[0][1] == "you badword 笨蛋"  # log only: stored as sent
        moderation = [r.getMessage() for r in caplog.records if "moderation" in r.getMessage()]
        assert len(moderation) == 1 and "action=log" in moderation[0] and "sha256=" in moderation[0]
        assert "badword" not in caplog.text and "笨蛋" not in caplog.text
        assert app.seams.reply_filters[-1].moderator.counts["input.private.log"] == 1


async def test_groups_are_stricter_than_dms():
    async with safe_app(safety=SAFETY) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("well darn it"), outbox)  # group-only word, in a DM
        await app.dispatcher.feed(make_event("well darn it", chat="-100", kind=ChatKind.GROUP), outbox)
        assert outbox.texts == ["Hello there, friend!", "I can't respond to that message."]
        assert await stored_turns(app, GROUP) == []  # a refused message is not stored


async def test_nsfw_channels_use_their_own_policy_or_else_the_group_policy():
    group_event = make_event("badword", user="discord:1", chat="77", kind=ChatKind.GROUP)
    nsfw_event = dataclasses.replace(group_event, nsfw=True, event_id="nsfw:1")
    async with safe_app(safety=SAFETY) as app:  # no nsfw policy: treated like any group
        outbox = RecordingOutbox()
        await app.dispatcher.feed(nsfw_event, outbox)
        assert outbox.texts == ["I can't respond to that message."]
    relaxed = {"moderation": dict(SAFETY["moderation"], nsfw={"input": "log", "output": "log"})}
    async with safe_app(safety=relaxed) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(nsfw_event, outbox)
        await app.dispatcher.feed(dataclasses.replace(group_event, event_id="sfw:1"), outbox)
        assert outbox.texts == ["Hello there, friend!", "I can't respond to that message."]


async def test_redacted_input_is_stored_redacted():
    safety = {"moderation": {"words": ["secretword"], "private": {"input": "redact"}}}
    async with safe_app(safety=safety) as app:
        await app.dispatcher.feed(make_event("my secretword is here"), RecordingOutbox())
        assert (await stored_turns(app, DM))[0][1] == "my ██████████ is here"


async def test_persona_lists_apply_only_while_that_persona_speaks():
    safety = {"moderation": {"personas": {"tutor": {"words": ["cheatsheet"]}}, "private": {"input": "refuse"}}}
    async with safe_app(safety=safety) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("send a cheatsheet"), outbox)  # companion: fine
        await app.dispatcher.feed(make_event("/persona tutor"), outbox)
        await app.dispatcher.feed(make_event("send a cheatsheet"), outbox)
        assert outbox.texts[0] == "Hello there, friend!"
        assert outbox.texts[-1] == "I can't respond to that message."


async def test_lists_for_an_unknown_persona_are_a_config_error():
    with pytest.raises(ConfigError, match="unknown persona"):
        async with safe_app(safety={"moderation": {"personas": {"nobody": {"words": ["x"]}}}}):
            pass


async def test_output_is_redacted_in_dms_and_refused_in_groups_even_while_streaming():
    reply = "Sure, here is a badword for you and more words after it"
    async with safe_app(replies=[reply], safety=SAFETY) as app:
        dm = RecordingOutbox(interval=0.0)  # every chunk becomes an edit
        await app.dispatcher.feed(make_event("hi"), dm)
        shown = [text for _, _, text in dm.log]
        assert len(shown) > 3 and not any("badword" in text for text in shown)
        assert dm.last == "Sure, here is a ███████ for you and more words after it"
        assert (await stored_turns(app, DM))[-1][1] == dm.last  # what is stored is what was shown

        group = RecordingOutbox(interval=0.0)
        await app.dispatcher.feed(make_event("hi", chat="-100", kind=ChatKind.GROUP), group)
        assert not any("badword" in text for _, _, text in group.log)
        assert group.texts == ["I'd rather not say that. Let's talk about something else."]
        counts = app.seams.reply_filters[-1].moderator.counts
        assert (counts["output.private.redact"], counts["output.group.refuse"]) == (1, 1)


async def test_terminal_escapes_from_the_model_never_reach_the_platform():
    async with safe_app(replies=["clear\x1b[2J screen\x00 now"], safety=SAFETY) as app:
        outbox = RecordingOutbox(interval=0.0)
        await app.dispatcher.feed(make_event("hi"), outbox)
        assert all("\x1b" not in text and "\x00" not in text for _, _, text in outbox.log)
        assert outbox.last == "clear[2J screen now"


async def test_commands_are_not_moderated():
    async with safe_app(safety=SAFETY) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("/persona 笨蛋", chat="-100", kind=ChatKind.GROUP), outbox)
        assert outbox.last.startswith("Unknown persona")
