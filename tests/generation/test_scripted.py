import asyncio

import pytest

from core.errors import GenerationBusy
from core.events import ChatMessage, FinishReason, GenerationParams, GenerationRequest
from core.generation.scripted import ScriptedGenerator
from core.ports import Generator


def request(text="hi", conversation="c1", **params):
    return GenerationRequest((ChatMessage("user", text),), GenerationParams(**params), conversation_id=conversation)


async def collect(gen, req):
    return [chunk async for chunk in gen.stream(req)]


async def test_cycles_replies_word_by_word():
    gen = ScriptedGenerator(["Hello there, friend!", "你好 世界"])
    assert isinstance(gen, Generator)
    first = await collect(gen, request())
    assert [c.text for c in first] == ["Hello", " there,", " friend!", ""]
    assert first[-1].finish_reason is FinishReason.STOP
    assert "".join(c.text for c in await collect(gen, request())) == "你好 世界"
    assert "".join(c.text for c in await collect(gen, request())) == "Hello there, friend!"
    assert [r.messages[0].content for r in gen.requests] == ["hi"] * 3


async def test_function_replies_and_limits():
    gen = ScriptedGenerator(lambda req: f"echo {req.messages[-1].content} STOP more")
    chunks = await collect(gen, request("x", stop=("STOP",)))
    assert "".join(c.text for c in chunks) == "echo x "
    assert chunks[-1].finish_reason is FinishReason.STOP_STRING
    chunks = await collect(gen, request("x", max_new_tokens=2))
    assert "".join(c.text for c in chunks) == "echo x"
    assert chunks[-1].finish_reason is FinishReason.LENGTH


async def test_exception_items_are_raised():
    gen = ScriptedGenerator(["ok", GenerationBusy("queue full")])
    await collect(gen, request())
    with pytest.raises(GenerationBusy):
        await collect(gen, request())


async def test_cancel_by_conversation_while_held():
    hold = asyncio.Event()
    gen = ScriptedGenerator(["one two three"], hold=hold)
    task = asyncio.create_task(collect(gen, request(conversation="c9")))
    await asyncio.sleep(0)  # let the stream start and wait on ``hold``
    assert gen.cancel("c9") == 1
    hold.set()
    chunks = await task
    assert chunks == [chunks[0]] and chunks[0].finish_reason is FinishReason.CANCELLED
    assert gen.cancel("c9") == 0


def test_needs_a_reply():
    with pytest.raises(ValueError):
        ScriptedGenerator([])
