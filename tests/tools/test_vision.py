"""Vision-language models on the transformers backend: a tiny random LLaVA-style model built
in the test (tests/tools/tiny_vlm.py, nothing downloaded). The processor's chat template
renders the image tokens, generation runs on a photo sent through the Telegram fake, bad
images get a short notice, and text-only models stay text-only."""

from __future__ import annotations

import io

import pytest

from core.errors import ConfigError
from core.events import ChatMessage
from core.generation.transformers_backend import TransformersGenerator
from core.generation.vision import check_vision_model
from core.media import NOT_AN_IMAGE, TOO_LARGE, ImageRejected, image_ref
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, bot_app, serving, telegram_settings, until
from tests.tools.tiny_vlm import DEFAULT_MODEL_DIR, IMAGE_TOKENS, build_tiny_vlm


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, kind)
    return out.getvalue()


@pytest.fixture(scope="module")
def vlm_folder(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture
async def vlm(vlm_folder):
    generator = await TransformersGenerator.load(str(vlm_folder), device="cpu", dtype="float32")
    calls: list[dict] = []
    generate = generator.model.generate

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return generate(*args, **kwargs)

    generator.model.generate = recording
    yield generator, calls
    await generator.aclose()


async def test_the_processor_template_renders_image_tokens_and_user_text_stays_plain(vlm):
    generator, _ = vlm
    image_id = generator.tokenizer.convert_tokens_to_ids("<image>")
    picture = image_ref(image_bytes(), 1_000_000, "telegram:file:1")
    messages = (ChatMessage("system", "You are kind."), ChatMessage("user", "what is <image> this?", images=(picture,)))
    ids, tensors = generator.vision.encode(messages)
    assert ids.count(image_id) == IMAGE_TOKENS  # the template's image part, expanded; the typed "<image>" is text
    assert tuple(tensors["pixel_values"].shape) == (1, 3, 28, 28)
    text_only = generator.prompt_ids([ChatMessage("user", "what is <image> this?")])
    assert image_id not in text_only


async def test_a_photo_through_the_telegram_fake_reaches_the_vlm_and_bad_images_get_a_notice(vlm, monkeypatch):
    generator, calls = vlm
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    fake = await FakeBotAPI().start()
    try:
        settings = telegram_settings(fake)
        settings = settings.model_copy(update={"model": settings.model.model_copy(update={"vision": True, "max_image_bytes": 20_000})})
        async with bot_app(settings, generator) as app, serving(app, fake):
            fake.user_message(None, chat_id=555, extra={**fake.photo(image_bytes("JPEG")), "caption": "这是什么？"})
            await until(fake, lambda: len(fake.texts(555)) == 1)
            assert len(calls) == 1 and tuple(calls[0]["pixel_values"].shape) == (1, 3, 28, 28)
            image_id = generator.tokenizer.convert_tokens_to_ids("<image>")
            assert calls[0]["input_ids"][0].tolist().count(image_id) == IMAGE_TOKENS
            whole = image_bytes()
            fake.user_message(None, chat_id=555, extra={**fake.photo(whole[: len(whole) // 2], file_id="p2"), "caption": "half"})
            await until(fake, lambda: len(fake.texts(555)) == 3)
            assert fake.texts(555)[1] == NOT_AN_IMAGE
            fake.user_message(None, chat_id=555, extra={**fake.document(b"MZ\x90 not a picture", "cat.jpg", "image/jpeg"), "caption": "cat?"})
            await until(fake, lambda: len(fake.texts(555)) == 5)
            assert fake.texts(555)[3] == NOT_AN_IMAGE
            big = image_bytes("PNG", (400, 400)) + bytes(30_000)
            fake.user_message(None, chat_id=555, extra={**fake.photo(big, file_id="p3"), "caption": "big"})
            await until(fake, lambda: len(fake.texts(555)) == 7)
            assert fake.texts(555)[5] == TOO_LARGE
        assert [("pixel_values" in call) for call in calls] == [True, False, False, False]  # captions answered as text
    finally:
        await fake.close()


def test_a_truncated_image_with_a_valid_header_is_not_an_image():
    whole = image_bytes("JPEG")
    assert image_ref(whole, 10**6).size == len(whole)
    with pytest.raises(ImageRejected) as rejected:
        image_ref(whole[: len(whole) // 2], 10**6)
    assert rejected.value.notice == NOT_AN_IMAGE


async def test_text_only_models_stay_text_only_and_vision_on_them_is_a_config_error(vlm_folder):
    check_vision_model(str(vlm_folder), "bot.toml")  # a VLM: fine
    with pytest.raises(ConfigError, match="bot.toml: model.vision: .* is a text-only model"):
        check_vision_model(str(DEFAULT_MODEL_DIR), "bot.toml")
    text_only = await TransformersGenerator.load(str(DEFAULT_MODEL_DIR), device="cpu", batching=False)
    try:
        assert text_only.vision is None
    finally:
        await text_only.aclose()
