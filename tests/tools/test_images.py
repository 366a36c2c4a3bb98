"""Images in: Telegram photos and image documents through the Bot API fake, to a
vision-flagged OpenAI fake (content parts checked) and to a text-only model (notice)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io

import pytest

from core.generation.openai_backend import OpenAIGenerator
from core.generation.scripted import ScriptedGenerator
from core.media import IMAGE_TEXT, NOT_AN_IMAGE, NOT_UNDERSTOOD, TOO_LARGE
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, bot_app, serving, telegram_settings, until
from tests.generation.fake_openai import FakeOpenAI, delta, finish, Reply



def png(width: int = 4, height: int = 3) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


PNG = png()


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


def with_model(settings, **model):
    return settings.model_copy(update={"model": settings.model.model_copy(update=model)})


async def test_a_photo_goes_to_a_vision_model_as_an_image_part(fake):
    async with FakeOpenAI() as llm:
        llm.replies.append(Reply(events=[delta("A tiny picture."), finish()]))
        settings = with_model(telegram_settings(fake), backend="openai", base_url=llm.base_url, model="fake", vision=True)
        generator = OpenAIGenerator(base_url=llm.base_url, model="fake", vision=True, max_retries=0)
        async with bot_app(settings, generator) as app, serving(app, fake):
            fake.user_message(None, chat_id=555, extra={**fake.photo(PNG), "caption": "这是什么？"})
            await until(fake, lambda: fake.texts(555) == ["A tiny picture."])
        (request,) = [r["json"] for r in llm.requests if r["json"]]
        content = request["messages"][-1]["content"]
        assert content[0] == {"type": "text", "text": "这是什么？"}
        assert content[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
        assert fake.downloads == ["photos/photo1.jpg"]  # the largest size, not the thumbnail
        assert TOKEN not in str(request)


async def test_a_photo_without_caption_is_sent_as_an_image_turn(fake):
    async with FakeOpenAI() as llm:
        settings = with_model(telegram_settings(fake), vision=True)
        generator = OpenAIGenerator(base_url=llm.base_url, model="fake", vision=True, max_retries=0)
        async with bot_app(settings, generator) as app, serving(app, fake):
            fake.user_message(None, chat_id=555, extra=fake.document(PNG, "scan.png", "image/png"))
            await until(fake, lambda: fake.texts(555) == ["ok"])
        content = [r["json"] for r in llm.requests if r["json"]][0]["messages"][-1]["content"]
        assert content[0] == {"type": "text", "text": IMAGE_TEXT} and content[1]["type"] == "image_url"


async def test_a_text_only_model_gets_the_caption_and_the_user_one_notice(fake):
    generator = ScriptedGenerator(["About your words."])
    async with bot_app(telegram_settings(fake), generator) as app, serving(app, fake):
        fake.user_message(None, chat_id=555, extra={**fake.photo(PNG), "caption": "nice view?"})
        await until(fake, lambda: fake.texts(555) == [NOT_UNDERSTOOD, "About your words."])
    assert fake.downloads == [] and generator.requests[0].messages[-1].content == "nice view?"
    assert generator.requests[0].messages[-1].images == ()


async def test_too_large_and_not_an_image_get_a_short_notice_and_the_caption_is_answered(fake):
    async with FakeOpenAI() as llm:
        settings = with_model(telegram_settings(fake), vision=True, max_image_bytes=1000)
        generator = OpenAIGenerator(base_url=llm.base_url, model="fake", vision=True, max_retries=0)
        async with bot_app(settings, generator) as app, serving(app, fake):
            fake.user_message(None, chat_id=555, extra={**fake.photo(PNG, announced=5_000_000), "caption": "big"})
            await until(fake, lambda: fake.texts(555) == [TOO_LARGE, "ok"])
            fake.user_message(None, chat_id=555, extra={**fake.document(b"MZ\x90\x00 not a picture", "cat.jpg", "image/jpeg"),
                                                       "caption": "cat?"})
            await until(fake, lambda: fake.texts(555)[2:] == [NOT_AN_IMAGE, "ok"])
            fake.user_message(None, chat_id=555, extra={**fake.photo(PNG * 100, file_id="p2", announced=10), "caption": "liar"})
            await until(fake, lambda: fake.texts(555)[4:] == [TOO_LARGE, "ok"])
        sent = [r["json"]["messages"][-1]["content"] for r in llm.requests if r["json"]]
        assert sent == ["big", "cat?", "liar"]  # plain text: no image part
        assert fake.downloads == ["photos/doc1.jpg"]  # the lying photo size was caught by getFile's size


# -- Discord -------------------------------------------------------------------------

DM = 555000000000000001


@contextlib.asynccontextmanager
async def discord_bot(monkeypatch, fake, llm, *, vision: bool, **model):
    from adapters.discord.bot import DiscordBot, run_bot
    from bots.app_factory import bot_app as build
    from core.storage.sqlite import SQLiteStore
    from tests.adapters.discord_harness import discord_settings
    from tests.conftest import make_settings

    monkeypatch.setenv("DISCORD_BOT_TOKEN", fake.token)
    settings = make_settings(discord=discord_settings(fake), model={
        "backend": "openai", "base_url": llm.base_url, "model": "fake", "vision": vision, **model})
    generator = OpenAIGenerator(base_url=llm.base_url, model="fake", vision=vision, max_retries=0)
    from core.media_feature import setup_media

    async with build(settings, store=SQLiteStore(":memory:"), generator=generator, features=[setup_media]) as app:
        bot = DiscordBot(app, guild_ready_timeout=0.01)
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(bot, stop))
        await asyncio.wait_for(fake.identified.wait(), 10)
        try:
            yield app
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def discord_fake():
    from tests.adapters.discord_fake_server import FakeDiscord

    async with FakeDiscord() as server:
        yield server


async def test_a_discord_attachment_goes_to_a_vision_model_and_a_fake_jpg_gets_a_notice(monkeypatch, discord_fake):
    fake = discord_fake
    async with FakeOpenAI() as llm, discord_bot(monkeypatch, fake, llm, vision=True) as app:
        llm.replies.append(Reply(events=[delta("A cat."), finish()]))
        await fake.dispatch("MESSAGE_CREATE", fake.message(DM, 7, "what's this?", files=[("cat.png", "image/png", PNG)]))
        await fake.wait_for(lambda: fake.texts_in(DM) == ["A cat."])
        await fake.dispatch("MESSAGE_CREATE", fake.message(DM, 7, "and this?", files=[("dog.jpg", "image/jpeg", b"GIF? no")]))
        await fake.wait_for(lambda: fake.texts_in(DM)[1:] == [NOT_AN_IMAGE, "ok"])
        # the second turn was answered under the conversation's lock, so the first one's observers ran
        (kept,) = (await app.store.plugin_items("media", user_id="discord:7")).values()
        assert kept == [{"ref": f"discord:attachment:{fake.downloads[0]}", "mime_type": "image/png", "size": len(PNG)}]
        assert "base64" not in str(await app.store.export_user("discord:7"))  # a reference, never the bytes
        await app.store.forget_user("discord:7")
        assert await app.store.plugin_items("media", user_id="discord:7") == {}
    first, second = [r["json"]["messages"][-1]["content"] for r in llm.requests if r["json"]]
    assert first[0] == {"type": "text", "text": "what's this?"} and first[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert second == "and this?"


async def test_a_discord_attachment_to_a_text_only_model_gets_one_notice(monkeypatch, discord_fake):
    fake = discord_fake
    async with FakeOpenAI() as llm, discord_bot(monkeypatch, fake, llm, vision=False):
        await fake.dispatch("MESSAGE_CREATE", fake.message(DM, 7, "look", files=[("cat.png", "image/png", PNG)]))
        await fake.wait_for(lambda: fake.texts_in(DM) == [NOT_UNDERSTOOD, "ok"])
    assert fake.downloads == []
    assert [r["json"]["messages"][-1]["content"] for r in llm.requests if r["json"]] == ["look"]
