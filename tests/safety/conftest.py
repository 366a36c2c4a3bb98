"""An App with the safety feature, on an in-memory SQLite store and a scripted model."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from bots.app_factory import bot_app
from core.runtime import Runtime
from core.generation.scripted import ScriptedGenerator
from core.safety import setup_safety
from core.storage.sqlite import SQLiteStore
from tests.conftest import make_settings


@contextlib.asynccontextmanager
async def safe_app(replies=("Hello there, friend!",), store=None, generator=None, **overrides) -> AsyncIterator[Runtime]:
    """``async with safe_app(safety={...}, limits={...}) as app``; ``replies`` may be a callable."""
    generator = generator or ScriptedGenerator(replies if callable(replies) else list(replies))
    settings = make_settings(**overrides)
    async with bot_app(settings, store=store or SQLiteStore(":memory:"), generator=generator, features=[setup_safety]) as app:
        yield app


@pytest.fixture
async def app():
    async with safe_app() as bot:
        yield bot


async def stored_turns(app, key):
    """(role, text, answered) of every message of the conversation at ``key``."""
    conversation = await app.store.active_conversation(key)
    return [(m.role, m.text, m.answered) for m in await app.store.history(conversation.id, limit=1000)]
