"""What plugins plug into (handlers, middlewares, prompt, filters) and how failures stay contained."""

from __future__ import annotations

import logging

import pytest

from core.errors import ConfigError
from core.events import ChatKind, ConversationKey, IncomingMessage, UserRef
from core.plugins import Plugin, keyword, predicate, regex
from core.plugins.wiring import apology
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import bot_settings, plugin_app, write_plugin

PLUGIN = '''
from core.errors import PermissionDenied
from core.plugins import CONTINUE, Plugin, PromptSection, keyword, regex

plugin = Plugin("probe")
seen = []

@plugin.on_message(regex(r"^order (?P<number>PB-\\d+)$"))
async def order(turn):
    return f"Order {turn.match.group('number')} is on its way."

@plugin.on_message(keyword("boom", "爆炸"))
async def explode(turn):
    raise RuntimeError("handler bug")

@plugin.on_message(keyword("maybe"))
async def maybe(turn):
    seen.append(turn.text)
    return CONTINUE

@plugin.on_message(keyword("standup"), unaddressed=True)
async def standup(turn):
    return "Noted for the standup."

@plugin.command("crash", "Always fails")
async def crash(turn):
    raise ZeroDivisionError("command bug")

@plugin.middleware
async def gate(turn, call_next):
    if turn.text == "forbidden words":
        raise PermissionDenied("gate", user_message="Not here, please.")
    if turn.text == "middleware bug":
        raise KeyError("middleware bug")
    await call_next()
    if turn.text == "late bug":
        raise ValueError("after the answer")

@plugin.prompt
async def context(turn, persona):
    if "fail context" in turn.text:
        raise RuntimeError("contributor bug")
    return ["The user's plan is Gold.", PromptSection("Be brief.", trusted=True)]

@plugin.reply_filter
async def sign(turn, text):
    if "fail filter" in turn.text:
        raise RuntimeError("filter bug")
    return text + " — probe"
'''


@pytest.fixture
async def app(tmp_path):
    write_plugin(tmp_path, "probe", PLUGIN)
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["probe"], "paths": {"probe": "probe.py"}})) as bot:
        yield bot


async def say(app, text: str, **kwargs) -> list[str]:
    outbox = RecordingOutbox()
    await app.dispatcher.feed(make_event(text, **kwargs), outbox)
    return outbox.texts


async def test_a_regex_handler_answers_instead_of_the_model_with_its_match(app):
    assert await say(app, "order PB-10293") == ["Order PB-10293 is on its way."]
    assert app.generator.requests == []


async def test_continue_lets_the_model_answer_after_the_handler_ran(app):
    assert await say(app, "maybe later") == ["Model reply. — probe"]
    assert app.services.plugins.loaded["probe"].plugin.message_handlers[2].handler.__globals__["seen"] == ["maybe later"]


async def test_group_messages_not_addressed_to_the_bot_reach_only_handlers_that_ask(app):
    assert await say(app, "standup: shipped the parser", kind=ChatKind.GROUP, chat="-5", addressed=False) == [
        "Noted for the standup."
    ]
    assert await say(app, "order PB-1", kind=ChatKind.GROUP, chat="-5", addressed=False) == []


async def test_prompt_contributions_reach_the_model_on_the_right_side_of_the_trust_boundary(app):
    await say(app, "what plan am I on?")
    messages = app.generator.requests[-1].messages
    assert "Be brief." in messages[0].content  # trusted: the operator's system prompt
    assert "The user's plan is Gold." not in messages[0].content
    assert any("The user's plan is Gold." in m.content for m in messages[1:] if m.role == "user")


@pytest.mark.parametrize(
    ("text", "what"),
    [("boom", "message handler explode"), ("爆炸了", "message handler explode"), ("/crash", "command /crash"),
     ("middleware bug", "middleware gate")],
)
async def test_a_raising_plugin_gets_the_user_an_apology_and_the_bot_goes_on(app, caplog, text, what):
    with caplog.at_level(logging.ERROR):
        assert await say(app, text) == [apology("probe")]
    assert f"plugin probe: {what} failed" in caplog.text
    assert await say(app, "order PB-7") == ["Order PB-7 is on its way."]
    assert await say(app, "hello") == ["Model reply. — probe"]
    assert app.services.plugins.loaded["probe"].failures == 1


async def test_a_middleware_may_refuse_with_its_own_answer(app):
    assert await say(app, "forbidden words") == ["Not here, please."]
    assert app.generator.requests == []


async def test_a_middleware_failing_after_the_answer_only_logs(app, caplog):
    with caplog.at_level(logging.ERROR):
        assert await say(app, "late bug") == ["Model reply. — probe"]
    assert "plugin probe: middleware gate failed: after the answer" in caplog.text


async def test_failing_prompt_contributors_and_reply_filters_cost_only_their_own_part(app, caplog):
    with caplog.at_level(logging.ERROR):
        assert await say(app, "please fail context") == ["Model reply. — probe"]
        assert await say(app, "please fail filter") == ["Model reply."]
    assert "plugin probe: prompt contributor failed" in caplog.text
    assert "plugin probe: reply filter failed" in caplog.text


async def test_errors_in_the_rest_of_the_chain_are_not_blamed_on_a_plugin_middleware(app, caplog):
    from core.dispatcher import Route
    from core.errors import PersonabotError

    async def broken(ctx):
        raise RuntimeError("core bug")

    app.seams.routes.add(Route("broken", lambda ctx: ctx.event.text == "trip", broken), before="chat")
    with caplog.at_level(logging.ERROR):
        assert await say(app, "trip") == [PersonabotError.user_message]
    assert "core bug" in caplog.text
    assert "plugin probe" not in caplog.text
    assert app.services.plugins.loaded["probe"].failures == 0


async def test_middlewares_and_routes_are_visible_in_the_chain(app):
    chain = app.dispatcher.describe()
    assert chain.index("input:input_limits") < chain.index("feature:plugin:probe:gate")
    assert chain.index("route:command") < chain.index("route:plugin:probe:order") < chain.index("route:chat")


def _event(text: str) -> IncomingMessage:
    return IncomingMessage("e", ConversationKey("console", "u"), UserRef("console", "u"), text)


@pytest.mark.parametrize(
    ("words", "text", "hit"),
    [
        (("help",), "I need HELP now", True),
        (("help",), "helpful tips", False),
        (("提醒",), "请提醒我明天开会", True),
        (("退款",), "我想退款。", True),
        (("café",), "un CAFÉ noir", True),
        (("c++",), "I like c++!", True),
    ],
)
def test_keyword_triggers_match_whole_words_and_unspaced_scripts(words, text, hit):
    assert bool(keyword(*words).test(_event(text))) is hit


def test_trigger_and_declaration_mistakes_are_config_errors():
    with pytest.raises(ConfigError, match="regex trigger"):
        regex("(unclosed")
    with pytest.raises(ConfigError, match="at least one"):
        keyword("  ")
    with pytest.raises(ConfigError, match="plugin name"):
        Plugin("Bad-Name")
    with pytest.raises(ConfigError, match="plugin name"):
        Plugin("enabled")
    plugin = Plugin("dup")

    @plugin.command("x", "first")
    async def first(turn):
        return None

    with pytest.raises(ConfigError, match="declared twice"):

        @plugin.command("x", "second")
        async def second(turn):
            return None

    with pytest.raises(ConfigError, match="names are 1-32"):
        plugin.command("Bad Name", "x")(first)
    assert predicate(lambda event: True, "always").description == "always"


async def test_a_raising_trigger_is_logged_and_skipped(tmp_path, caplog):
    write_plugin(
        tmp_path,
        "picky",
        """
        from core.plugins import Plugin, predicate
        plugin = Plugin("picky")

        @plugin.on_message(predicate(lambda event: 1 / 0))
        async def never(turn):
            return "never"
        """,
    )
    with caplog.at_level(logging.ERROR):
        async with plugin_app(bot_settings(tmp_path, {"enabled": ["picky"], "paths": {"picky": "picky.py"}})) as app:
            assert await say(app, "hi") == ["Model reply."]
    assert "plugin picky: trigger of never failed" in caplog.text


async def test_a_handlers_exchange_is_kept_in_the_conversation_like_a_chat_turn(app):
    event = make_event("order PB-42")
    await app.dispatcher.feed(event, RecordingOutbox())
    conversation = await app.store.active_conversation(event.key)
    assert [(m.role, m.text) for m in await app.store.history(conversation.id)] == [
        ("user", "order PB-42"), ("assistant", "Order PB-42 is on its way.")
    ]
    user_turn, reply = await app.store.turn_by_event(event.event_id)
    assert (user_turn.text, reply.text) == ("order PB-42", "Order PB-42 is on its way.")
    await say(app, "and when does it arrive?")
    prompt = [m.content for m in app.generator.requests[-1].messages]
    assert "Order PB-42 is on its way." in "\n".join(prompt)
