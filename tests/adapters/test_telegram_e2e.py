"""The Telegram adapter end to end: the real PTB Application against the Bot API fake."""

from __future__ import annotations

import asyncio
import logging
import re
import socket

import httpx
import pytest

from adapters.telegram.adapter import serve
from adapters.telegram.adapter import SECRET_HEADER
from adapters.telegram.convert import TEXT_ONLY_NOTICE
from core.commands import CommandSpec
from core.errors import ConfigError
from core.events import Attachment, Reply
from core.generation.scripted import ScriptedGenerator
from core.text import utf16_len
from tests.adapters.telegram_fake_server import BOT_USERNAME, TOKEN, FakeBotAPI
from tests.adapters.telegram_support import ADMIN, TOKEN_ENV, bot_app, serving, telegram_settings, until

GROUP = -1001234
REPLY = "Hello there, 朋友! How are you today? 😀"


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


def echo(request) -> str:
    return f"echo: {request.messages[-1].content}"


async def history(app, chat_id: int) -> list[tuple[str, str]]:
    from core.events import ConversationKey

    conversation = await app.store.active_conversation(ConversationKey("telegram", str(chat_id)))
    return [(m.role, m.text) for m in await app.store.history(conversation.id)]


# -- private chats -------------------------------------------------------------------
async def test_a_private_conversation_streams_as_drafts_and_is_stored(fake):
    generator = ScriptedGenerator([REPLY, "Second answer 👋"], chunk_delay=0.005)
    async with bot_app(telegram_settings(fake), generator) as app:
        async with serving(app, fake):
            first = fake.user_message("hi 你好", chat_id=555)
            await until(fake, lambda: fake.texts(555) == [REPLY])
            fake.user_message("again", chat_id=555)
            await until(fake, lambda: fake.texts(555) == [REPLY, "Second answer 👋"])
        assert await history(app, 555) == [
            ("user", "hi 你好"), ("assistant", REPLY), ("user", "again"), ("assistant", "Second answer 👋")
        ]
    drafts = [call.params["text"] for call in fake.calls_of("sendMessageDraft")]
    assert drafts and all(REPLY.startswith(text) or "Second answer 👋".startswith(text) for text in drafts)
    sends = fake.calls_of("sendMessage")
    assert [call.params["text"] for call in sends] == [REPLY, "Second answer 👋"]
    assert all("parse_mode" not in call.params for call in sends)
    assert sends[0].params["reply_parameters"]["message_id"] == 1  # quotes the user's message
    assert first and any(c.params["chat_id"] == 555 for c in fake.calls_of("sendChatAction"))


async def test_edit_streaming_ends_with_the_full_reply(fake):
    generator = ScriptedGenerator([REPLY], chunk_delay=0.005)
    async with bot_app(telegram_settings(fake, private_streaming="edit"), generator) as app, serving(app, fake):
        fake.user_message("hi", chat_id=555)
        await until(fake, lambda: fake.texts(555) == [REPLY])
    assert len(fake.calls_of("sendMessage")) == 1
    assert fake.calls_of("editMessageText")
    assert not fake.calls_of("sendMessageDraft", ok=None)


async def test_refused_drafts_fall_back_to_edits_for_good(fake):
    fake.drafts_supported = False
    generator = ScriptedGenerator([REPLY, "Second answer 👋"], chunk_delay=0.005)
    async with bot_app(telegram_settings(fake), generator) as app, serving(app, fake):
        fake.user_message("hi", chat_id=555)
        await until(fake, lambda: fake.texts(555) == [REPLY])
        fake.user_message("again", chat_id=555)
        await until(fake, lambda: fake.texts(555) == [REPLY, "Second answer 👋"])
    assert len(fake.calls_of("sendMessageDraft", ok=None)) == 1


async def test_media_in_a_private_chat_gets_the_text_only_notice(fake):
    photo = {"photo": [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]}
    generator = ScriptedGenerator([REPLY])
    async with bot_app(telegram_settings(fake), generator) as app, serving(app, fake):
        fake.user_message(None, chat_id=555, extra=photo)
        await until(fake, lambda: fake.texts(555) == [TEXT_ONLY_NOTICE])
        fake.user_message(None, chat_id=GROUP, user_id=7, extra=photo)
    assert fake.texts(GROUP) == [] and generator.requests == []


# -- groups --------------------------------------------------------------------------
async def test_a_group_answers_mentions_and_replies_and_ignores_the_rest(fake):
    generator = ScriptedGenerator(echo)
    async with bot_app(telegram_settings(fake), generator) as app, serving(app, fake):
        fake.user_message("just chatting", chat_id=GROUP, user_id=7)
        fake.user_message(f"@{BOT_USERNAME} 你好吗？", chat_id=GROUP, user_id=7)
        mention = fake.updates[-1]["message"]["message_id"]
        await until(fake, lambda: fake.texts(GROUP) == ["echo: 你好吗？"])
        answer = fake.bot_messages(GROUP)[0]
        fake.user_message("and then?", chat_id=GROUP, user_id=8, reply_to=answer)
        reply = fake.updates[-1]["message"]["message_id"]
        await until(fake, lambda: fake.texts(GROUP) == ["echo: 你好吗？", "echo: and then?"])
    # After a graceful stop every fetched update was handled: the first one stayed silent.
    assert [m["reply_to_message_id"] for m in fake.bot_messages(GROUP)] == [mention, reply]
    assert len(generator.requests) == 2


async def test_forum_topics_are_answered_in_their_topic(fake):
    async with bot_app(telegram_settings(fake), ScriptedGenerator(echo)) as app, serving(app, fake):
        fake.user_message(f"@{BOT_USERNAME} in the topic", chat_id=GROUP, user_id=7, thread_id=42)
        await until(fake, lambda: fake.texts(GROUP) == ["echo: in the topic"])
    assert fake.bot_messages(GROUP)[0]["message_thread_id"] == 42
    assert all(c.params.get("message_thread_id") == 42 for c in fake.calls_of("sendChatAction"))


async def test_private_replies_in_groups_go_to_the_users_dm_when_possible(fake):
    fake.refused_chats.add(8)  # user 8 never started the bot
    async with bot_app(telegram_settings(fake), ScriptedGenerator(echo)) as app, serving(app, fake):
        fake.user_message(f"/help@{BOT_USERNAME}", chat_id=GROUP, user_id=7)
        await until(fake, lambda: fake.texts(7))
        fake.user_message("/help", chat_id=GROUP, user_id=8)
        await until(fake, lambda: fake.texts(GROUP))
    assert fake.texts(7)[0].startswith("Commands:")
    assert len(fake.texts(GROUP)) == 1 and fake.texts(GROUP)[0].startswith("Commands:")
    assert fake.bot_messages(GROUP)[0]["reply_to_message_id"] == 2


# -- commands ------------------------------------------------------------------------
async def test_commands_are_published_with_admin_commands_only_in_admin_chats(fake):
    async with bot_app(telegram_settings(fake), ScriptedGenerator(echo)) as app, serving(app, fake):
        pass
    default = [c["command"] for c in fake.commands['{"type": "default"}']]
    admin = [c["command"] for c in fake.commands[f'{{"chat_id": {ADMIN}, "type": "chat"}}']]
    assert {"start", "help", "persona", "reset", "about"} <= set(default)
    assert "admin" not in default
    assert admin == default + ["admin"]


async def test_an_admin_command_works_for_admins_and_is_refused_to_others(fake):
    async with bot_app(telegram_settings(fake), ScriptedGenerator(echo)) as app, serving(app, fake):
        fake.user_message("/admin ban telegram:8", chat_id=7)
        await until(fake, lambda: fake.texts(7))
        assert not await app.store.is_banned("telegram:8")
        fake.user_message("/admin ban 7", chat_id=ADMIN)
        await until(fake, lambda: fake.texts(ADMIN))
        assert await app.store.is_banned("telegram:7")
        fake.user_message("hello?", chat_id=7)
    assert fake.texts(7) == ["Only the bot's admins can do that."]
    assert fake.texts(ADMIN)[0].startswith("Banned telegram:7")


async def test_a_command_with_an_attachment_sends_a_document_and_hyphenated_names_work(fake):
    data = '{"名字": "李雷"}'.encode()

    async def export(ctx, args):
        return Reply("Here is your data", attachment=Attachment("export.json", data, "application/json"))

    async with bot_app(telegram_settings(fake), ScriptedGenerator(echo)) as app:
        app.commands.add(CommandSpec("export-data", "Export", export))
        async with serving(app, fake):
            fake.user_message("/export_data", chat_id=555)
            await until(fake, lambda: fake.documents)
    assert fake.documents == [(555, "export.json", data)]
    assert fake.texts(555) == ["Here is your data"]
    assert "export_data" in [c["command"] for c in fake.commands['{"type": "default"}']]


# -- limits --------------------------------------------------------------------------
async def test_a_reply_over_4096_units_is_split_without_loss(fake):
    paragraphs = [f"第{i}段：" + "这是很长的回答，" * 300 + "😀" * 200 for i in range(6)]
    reply = "\n\n".join(paragraphs)
    assert utf16_len(reply) > 3 * 4096
    settings = telegram_settings(fake, private_streaming="edit")
    async with bot_app(settings, ScriptedGenerator([reply])) as app:
        async with serving(app, fake):
            fake.user_message("tell me everything", chat_id=555)
            await until(fake, lambda: re.sub(r"\s", "", "".join(fake.texts(555))) == re.sub(r"\s", "", reply))
        assert (await history(app, 555))[-1] == ("assistant", reply)  # stored once its handler finished
    texts = fake.texts(555)
    assert len(texts) >= 4 and all(utf16_len(text) <= 4096 for text in texts)


async def test_a_429_is_waited_out_and_the_message_delivered(fake):
    fake.flood("sendMessage", retry_after=1)
    settings = telegram_settings(fake, private_streaming="final", max_retries=1)
    async with bot_app(settings, ScriptedGenerator([REPLY])) as app, serving(app, fake):
        fake.user_message("hi", chat_id=555)
        await until(fake, lambda: fake.texts(555) == [REPLY])
    refused, delivered = fake.calls_of("sendMessage", ok=False), fake.calls_of("sendMessage")
    assert len(refused) == 1 and len(delivered) == 1
    # with one retry allowed, a retry inside the flood window would have been refused again
    assert delivered[0].at - refused[0].at >= 1.0


async def test_a_429_storm_delivers_every_message_once(fake):
    fake.flood("sendMessage", retry_after=1, times=3)
    chats = [501, 502, 503, 504]
    settings = telegram_settings(fake, private_streaming="final")
    async with bot_app(settings, ScriptedGenerator(echo)) as app, serving(app, fake):
        for chat in chats:
            fake.user_message(f"message {chat}", chat_id=chat)
        await until(fake, lambda: all(fake.texts(chat) for chat in chats))
    assert {chat: fake.texts(chat) for chat in chats} == {chat: [f"echo: message {chat}"] for chat in chats}
    assert len(fake.calls_of("sendMessage", ok=False)) >= 3


# -- delivery ------------------------------------------------------------------------
async def test_a_redelivered_update_is_not_answered_twice_after_a_restart(fake, tmp_path):
    from core.storage.sqlite import SQLiteStore

    generator = ScriptedGenerator(echo)
    async with bot_app(telegram_settings(fake), generator, SQLiteStore(tmp_path / "bot.db")) as app:
        async with serving(app, fake):
            fake.user_message("once", chat_id=555)
            await until(fake, lambda: fake.texts(555))
    fake.updates.append(fake.delivered[-1])  # Telegram delivers it again (it never saw our confirmation)
    async with bot_app(telegram_settings(fake), generator, SQLiteStore(tmp_path / "bot.db")) as app:
        async with serving(app, fake):
            await until(fake, lambda: not fake.updates)  # fetched and confirmed by the new instance
    assert fake.texts(555) == ["echo: once"]
    assert len(generator.requests) == 1


async def test_a_network_drop_is_retried_and_the_token_never_logged(fake, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    fake.fail("getUpdates", 502, "Bad Gateway")
    async with bot_app(telegram_settings(fake), ScriptedGenerator([REPLY])) as app, serving(app, fake):
        fake.user_message("hi", chat_id=555)
        await until(fake, lambda: fake.texts(555) == [REPLY])
    assert len(fake.calls_of("getUpdates", ok=False)) == 1
    assert "***" in caplog.text  # the lines that carried the token were logged, redacted
    assert TOKEN not in caplog.text
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


async def test_a_rejected_token_is_a_clear_config_error(fake, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "987654:rejected-TOKEN_value"
    monkeypatch.setenv(TOKEN_ENV, wrong)
    async with bot_app(telegram_settings(fake), ScriptedGenerator([REPLY])) as app:
        with pytest.raises(ConfigError, match=TOKEN_ENV) as error:
            await serve(app, asyncio.Event())
        monkeypatch.setenv(TOKEN_ENV, "not a token")
        with pytest.raises(ConfigError, match="does not look like a bot token"):
            await serve(app, asyncio.Event())
    assert wrong not in str(error.value) and wrong not in caplog.text
    assert [c.method for c in fake.calls] == ["getMe"]


# -- webhook -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_webhook_mode_checks_the_secret_header(fake, monkeypatch):
    secret = "s3cret_Value-1"
    monkeypatch.setenv("PERSONABOT_TEST_WEBHOOK_SECRET", secret)
    port = free_port()
    settings = telegram_settings(
        fake,
        mode="webhook",
        webhook_url="https://bot.example.org/telegram",
        webhook_secret_env="PERSONABOT_TEST_WEBHOOK_SECRET",
        webhook_port=port,
    )
    generator = ScriptedGenerator(echo)
    url = f"http://127.0.0.1:{port}/telegram"
    async with bot_app(settings, generator) as app, serving(app, fake):
        assert fake.webhook["url"] == "https://bot.example.org/telegram"
        assert fake.webhook["secret_token"] == secret
        assert fake.webhook["allowed_updates"] == ["message"]
        fake.user_message("forged", chat_id=555)
        forged = fake.updates.pop()
        fake.user_message("genuine", chat_id=555)
        genuine = fake.updates.pop()
        async with httpx.AsyncClient() as client:
            assert (await client.post(url, json=forged, headers={SECRET_HEADER: "wrong"})).status_code == 403
            assert (await client.post(url, json=forged, headers={SECRET_HEADER: secret + "x"})).status_code == 403
            assert (await client.post(url, json=forged)).status_code == 403
            bad = await client.post(url, content=b"{not json", headers={SECRET_HEADER: secret})
            assert bad.status_code == 400
            assert (await client.post(url, json=genuine, headers={SECRET_HEADER: secret})).status_code == 200
        await until(fake, lambda: fake.texts(555) == ["echo: genuine"])
    assert [r.messages[-1].content for r in generator.requests] == ["genuine"]
    assert not fake.calls_of("getUpdates", ok=None)
