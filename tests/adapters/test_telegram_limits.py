"""The outgoing flood limiter (adapters/telegram/limits.py): its budgets, and what it
tells the send journal when a call fails."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram.error import TimedOut

from adapters.telegram.limits import CURRENT_HOOK, TelegramRateLimiter
from adapters.telegram.wire import ON_BODY_WRITTEN, BodyWrittenTransport
from adapters.telegram.settings import TelegramSettings


def recorder(log: list[tuple[str, int, float]]):
    def make(endpoint: str, chat_id: int):
        async def callback() -> bool:
            log.append((endpoint, chat_id, asyncio.get_running_loop().time()))
            return True

        return callback

    return make


def request(limiter: TelegramRateLimiter, make, endpoint: str, chat_id: int) -> asyncio.Task:
    data = {"chat_id": chat_id, "text": "x"}
    return asyncio.create_task(limiter.process_request(make(endpoint, chat_id), (), {}, endpoint, data, None))


async def test_messages_to_one_chat_are_spaced_by_the_per_chat_rate():
    limiter = TelegramRateLimiter(chat_max_rate=20, overall_max_rate=10_000, group_max_rate=0)
    log: list[tuple[str, int, float]] = []
    make = recorder(log)
    await asyncio.gather(*(request(limiter, make, "sendMessage", 5) for _ in range(4)))
    times = [at for *_, at in log]
    # a limiter may only ever make calls later, never earlier: a lower bound cannot flake
    assert all(later - earlier >= 0.045 for earlier, later in zip(times, times[1:]))


async def test_chats_do_not_wait_for_each_other_and_typing_skips_the_message_budgets():
    limiter = TelegramRateLimiter(chat_max_rate=0.1, overall_max_rate=10_000, group_max_rate=1)
    log: list[tuple[str, int, float]] = []
    make = recorder(log)
    await request(limiter, make, "sendMessage", 5)
    await request(limiter, make, "sendMessage", -100)
    blocked = [request(limiter, make, "editMessageText", 5), request(limiter, make, "sendMessage", -100)]
    await asyncio.wait_for(request(limiter, make, "sendMessage", 6), 5)
    await asyncio.wait_for(request(limiter, make, "sendChatAction", 5), 5)
    await asyncio.wait_for(request(limiter, make, "sendChatAction", -100), 5)
    assert not any(task.done() for task in blocked)
    for task in blocked:
        task.cancel()
    await asyncio.gather(*blocked, return_exceptions=True)
    assert [(endpoint, chat) for endpoint, chat, _ in log] == [
        ("sendMessage", 5), ("sendMessage", -100), ("sendMessage", 6), ("sendChatAction", 5), ("sendChatAction", -100)
    ]


def test_the_defaults_are_telegrams_documented_limits():
    settings = TelegramSettings()
    assert (settings.chat_messages_per_second, settings.group_messages_per_minute) == (1.0, 20.0)
    assert settings.overall_messages_per_second == 30.0


class Journal:
    def __init__(self) -> None:
        self.log: list[str] = []

    async def attempt(self, endpoint, chat_id, text, message_id, at) -> None:
        self.log.append("attempt")

    async def sent(self, message_id) -> None:
        self.log.append("sent")

    async def failed(self) -> None:
        self.log.append("failed")


def timing_out_once(cause: Exception):
    calls: list[int] = []

    async def callback() -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise TimedOut("timed out") from cause
        return {"message_id": 7}

    return callback, calls


async def test_a_timeout_before_the_request_left_is_taken_back_and_retried():
    for cause in (httpx.PoolTimeout("no free connection"), httpx.ConnectTimeout("no connection")):
        limiter, journal = TelegramRateLimiter(chat_max_rate=1000, overall_max_rate=10_000, group_max_rate=0), Journal()
        CURRENT_HOOK.set(journal)
        callback, calls = timing_out_once(cause)
        assert await limiter.process_request(callback, (), {}, "sendMessage", {"chat_id": 5, "text": "x"}, None) == {"message_id": 7}
        assert len(calls) == 2 and journal.log == ["attempt", "failed", "attempt", "sent"]


async def test_a_timeout_after_the_request_left_counts_as_shown_and_is_not_retried():
    limiter, journal = TelegramRateLimiter(chat_max_rate=1000, overall_max_rate=10_000, group_max_rate=0), Journal()
    CURRENT_HOOK.set(journal)
    callback, calls = timing_out_once(httpx.ReadTimeout("no answer"))
    with pytest.raises(TimedOut):
        await limiter.process_request(callback, (), {}, "sendMessage", {"chat_id": 5, "text": "x"}, None)
    assert len(calls) == 1 and journal.log == ["attempt"]  # the attempt stays: the journal counts it as shown


async def test_a_journaled_send_waits_until_the_one_before_is_written_not_until_it_is_answered():
    """At most one journaled request is between the journal and the socket (wire.py)."""
    limiter, log = TelegramRateLimiter(chat_max_rate=1000, overall_max_rate=10_000, group_max_rate=0), []
    answer = asyncio.Event()

    class Logging(Journal):
        async def attempt(self, endpoint, chat_id, text, message_id, at) -> None:
            log.append(f"journal {chat_id}")

    async def first() -> dict:
        log.append("first written")
        ON_BODY_WRITTEN.get()()  # what BodyWrittenTransport's trace does once the body is on the socket
        await answer.wait()  # a slow answer does not hold the next send back
        return {"message_id": 1}

    async def second() -> dict:
        log.append("second written")
        return {"message_id": 2}

    async def unwritten() -> dict:
        log.append("third, never written")
        raise httpx.ConnectError("refused")

    CURRENT_HOOK.set(Logging())
    calls = [asyncio.create_task(limiter.process_request(call, (), {}, "sendMessage", {"chat_id": chat, "text": "x"}, 0))
             for call, chat in ((first, 5), (second, 6))]
    assert await calls[1] == {"message_id": 2}
    assert log == ["journal 5", "first written", "journal 6", "second written"]
    with pytest.raises(httpx.ConnectError):  # a call that fails before its body is written gives the turn back
        await limiter.process_request(unwritten, (), {}, "sendMessage", {"chat_id": 7, "text": "x"}, 0)
    sent = limiter.process_request(second, (), {}, "sendMessage", {"chat_id": 8, "text": "x"}, 0)
    assert await asyncio.wait_for(sent, 5) == {"message_id": 2}
    answer.set()
    assert await calls[0] == {"message_id": 1}


async def test_the_transport_reports_a_request_body_once_it_is_written():
    written = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.wait_for(written.wait(), 5)  # answers only once the client has been told
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/send", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        async with httpx.AsyncClient(transport=BodyWrittenTransport(httpx.AsyncHTTPTransport())) as client:
            token = ON_BODY_WRITTEN.set(written.set)
            try:
                response = await client.post(f"http://127.0.0.1:{server.port}/send", data={"chat_id": "5", "text": "你好"})
            finally:
                ON_BODY_WRITTEN.reset(token)
    assert response.json() == {"ok": True} and written.is_set()


async def test_sends_that_waited_behind_a_slow_journal_write_take_their_slots_again():
    """No backlog leaves at once after a stall: what left never exceeds the overall budget."""
    limiter = TelegramRateLimiter(chat_max_rate=1000, overall_max_rate=2, group_max_rate=0)
    left: list[float] = []

    class SlowFirst(Journal):
        async def attempt(self, endpoint, chat_id, text, message_id, at) -> None:
            if chat_id == "1":
                await asyncio.sleep(1.5)  # a commit stalled behind a busy writer, longer than a window

    async def send() -> dict:
        left.append(asyncio.get_running_loop().time())
        ON_BODY_WRITTEN.get()()
        return {"message_id": 1}

    CURRENT_HOOK.set(SlowFirst())
    await asyncio.gather(*(limiter.process_request(send, (), {}, "sendMessage", {"chat_id": chat, "text": "x"}, 0)
                           for chat in (1, 2, 3)))
    left.sort()
    assert left[2] - left[0] >= 1.0  # the third waited a whole window after the first two left
