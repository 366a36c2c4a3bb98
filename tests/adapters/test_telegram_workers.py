"""Telegram webhook workers on the operator HTTP server: one port for /readyz, /metrics
and the webhook; a redelivered update is answered once, also by two worker processes
on one PostgreSQL database (started from the installed binaries, tests/postgres_server.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from adapters.telegram.adapter import serve
from core.generation.scripted import ScriptedGenerator
from core.http.operator import Operator
from core.http.settings import HttpSettings
from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI
from tests.adapters.telegram_support import TOKEN_ENV, bot_app, telegram_settings, until
from tests.adapters.webhook_workers import WebhookWorkers, answer_key
from tests.postgres_server import PASSWORD as PG_PASSWORD
from tests.postgres_server import pg_server  # noqa: F401  (fixture)

SECRET_ENV, SECRET = "PERSONABOT_TEST_WEBHOOK_SECRET", "worker_secret-1"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    server = await FakeBotAPI().start()
    yield server
    await server.close()


def webhook_settings(fake: FakeBotAPI):
    return telegram_settings(
        fake,
        mode="webhook",
        private_streaming="final",
        webhook_url="https://bot.example.org/telegram",
        webhook_secret_env=SECRET_ENV,
        webhook_port=1,  # not used: the webhook shares the [http] server
    )


async def test_the_webhook_shares_the_operator_server_and_readiness_follows_the_adapter(fake):
    operator = Operator.from_settings(HttpSettings(enabled=True, port=0))
    async with operator, bot_app(webhook_settings(fake), ScriptedGenerator(["Got it 收到"])) as app:
        assert operator.server is not None
        base = f"http://127.0.0.1:{operator.server.port}"
        operator.watch(app)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(app, stop, operator))
        await until(fake, lambda: fake.webhook is not None, task)
        operator.health.started()
        update = fake.message_update("hello 你好", chat_id=555)
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"{base}/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
            for _ in range(2):  # Telegram redelivers when an answer is slow: the same update twice
                posted = await client.post(f"{base}/telegram", json=update, headers={HEADER: SECRET})
                assert posted.status_code == 200
            assert (await client.post(f"{base}/telegram", json=update, headers={HEADER: "forged"})).status_code == 403
            await until(fake, lambda: fake.texts(555) == ["Got it 收到"], task)
            stop.set()
            await task
            gone = await client.post(f"{base}/telegram", json=update, headers={HEADER: SECRET})
            unready = await client.get(f"{base}/readyz")
    assert fake.texts(555) == ["Got it 收到"]  # answered once
    assert gone.status_code == 404  # a stopped worker takes no updates: Telegram retries elsewhere
    assert unready.status_code == 503 and unready.json()["reasons"] == {"telegram": "stopped"}


async def test_two_worker_processes_on_one_postgresql_answer_every_update_once(fake, tmp_path, pg_server):
    """Updates spread over two `personabot run` workers, a quarter of them posted to both."""
    url = (await pg_server.create_database()).replace(f":{PG_PASSWORD}@", "@")  # the password goes by env var
    updates = [fake.message_update(f"message {n} 你好", chat_id=100 + n % 5) for n in range(24)]
    async with WebhookWorkers(fake, tmp_path, url, count=2, password=PG_PASSWORD) as workers:
        posts = [workers.post(n % 2, update) for n, update in enumerate(updates)]
        posts += [workers.post((n + 1) % 2, update) for n, update in enumerate(updates) if n % 4 == 0]
        assert set(await asyncio.gather(*posts)) == {200}
        expected = {(update["message"]["chat"]["id"], update["message"]["message_id"]) for update in updates}
        await fake.wait_for(lambda: expected <= {answer_key(c) for c in fake.calls_of("sendMessage")}, 60)
        codes = await workers.stop()  # drained: no reply can still be on its way
    assert codes == [0, 0], workers.stderr()
    answers = [answer_key(call) for call in fake.calls_of("sendMessage")]
    assert sorted(answers) == sorted(expected)  # every update answered, none twice
