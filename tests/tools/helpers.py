"""A bot on the OpenAI-compatible fake (tests/generation/fake_openai.py) with scripted tool-call streams."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

from bots.app_factory import bot_app
from core.generation.openai_backend import OpenAIGenerator
from core.storage.sqlite import SQLiteStore
from core.tools.feature import setup_tools
from tests.conftest import make_settings
from tests.generation.fake_openai import FakeOpenAI, Reply, delta, finish


def call_event(index: int, call_id: str | None = None, name: str | None = None, arguments: str | None = None) -> str:
    function = {key: value for key, value in (("name", name), ("arguments", arguments)) if value is not None}
    call = {"index": index, **({"id": call_id, "type": "function"} if call_id else {}), "function": function}
    return json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})


def tool_reply(*calls: tuple[str, dict | str]) -> Reply:
    """One streamed round asking for ``calls`` (name, arguments); arguments split over two deltas."""
    events = []
    for index, (name, arguments) in enumerate(calls):
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        half = len(raw) // 2
        events += [call_event(index, f"call_{index}_{name}", name, raw[:half]), call_event(index, arguments=raw[half:])]
    return Reply(events=events + [finish("tool_calls")])


def text_reply(text: str) -> Reply:
    return Reply(events=[delta(text), finish("stop")])


def tools_feature(*tools):
    async def add(bot, stack) -> None:
        bot.seams.tools.extend(tools)

    return add


@asynccontextmanager
async def tool_bot(*tools, tools_section: dict | None = None, extra_features=(), embedder=None, store=None, **settings):
    async with FakeOpenAI() as server:
        generator = OpenAIGenerator(base_url=server.base_url, model="fake", max_retries=0)
        data = {"model": {"backend": "openai", "base_url": server.base_url, "model": "fake"},
                "limits": {"user_burst": 1000, "chat_burst": 1000},
                "tools": tools_section or {}, **settings}
        async with bot_app(
            make_settings(**data), store=store or SQLiteStore(":memory:"), generator=generator, embedder=embedder,
            features=[*extra_features, tools_feature(*tools), setup_tools],
        ) as bot:
            yield bot, server


def sent_messages(server: FakeOpenAI, index: int) -> list[dict]:
    return [r for r in server.requests if r["path"].endswith("/chat/completions")][index]["json"]["messages"]


def completions(server: FakeOpenAI) -> list[dict]:
    return [r["json"] for r in server.requests if r["path"].endswith("/chat/completions")]
