"""Shared fixtures: an App on an in-memory store and a scripted model."""

from __future__ import annotations

import itertools

import pytest

import adapters  # noqa: F401  (registers the platform sections of bot files)
from bots.app_factory import bot_app
from core.events import ChatKind, CommandCall, ConversationKey, IncomingMessage, UserRef
from core.settings import BotSettings
from tests.fakes import RecordingOutbox

_ids = itertools.count(1)


def make_event(
    text: str,
    user: str = "telegram:1",
    chat: str | None = None,
    *,
    kind: ChatKind = ChatKind.PRIVATE,
    addressed: bool = True,
    event_id: str | None = None,
    command: CommandCall | None = None,
    space_id: str | None = None,
) -> IncomingMessage:
    """An event as an adapter would produce it; commands parsed like Telegram does."""
    from core.commands import parse_command_text

    ref = UserRef.parse(user)
    chat_id = chat or ref.user_id
    return IncomingMessage(
        event_id=event_id or f"test:{next(_ids)}",
        key=ConversationKey(ref.platform, chat_id),
        user=ref,
        text=text,
        chat_kind=kind,
        command=command if command is not None else parse_command_text(text),
        addressed_to_bot=addressed,
        space_id=space_id,
        user_display_name="Tester",
    )


def make_settings(**overrides) -> BotSettings:
    data = {"name": "test", "admins": ["telegram:999"], "model": {"backend": "scripted"}}
    data.update(overrides)
    # Tests answer each group message unless they test bursts (core/bursts.py, tests/etiquette/test_bursts.py).
    data["limits"] = {"merge_window_s": 0.0, **data.get("limits", {})}
    return BotSettings.model_validate(data)


@pytest.fixture
def settings() -> BotSettings:
    return make_settings()


@pytest.fixture
def outbox() -> RecordingOutbox:
    return RecordingOutbox()


@pytest.fixture
async def app(settings):
    from core.generation.scripted import ScriptedGenerator
    from core.storage.sqlite import SQLiteStore

    generator = ScriptedGenerator(["Hello there, friend!", "Second reply.", "Third reply."])
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=generator, features=[]) as bot:
        yield bot
