"""Telegram webhook workers as real `personabot run` processes, for tests and bench/scale.py.

    async with WebhookWorkers(fake, tmp_path, store_url, count=2) as workers:
        await workers.post(0, update)              # what a load balancer does
        ...
    # on exit: SIGTERM, in-flight replies drained, exit codes checked

Each worker: scripted model, ``[http]`` on a port of its own with the webhook on it,
the Bot API fake as Telegram, the given database. Readiness is /readyz turning 200.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI

REPO = Path(__file__).resolve().parents[2]
SECRET = "workers-webhook-secret"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
REPLY = "Got it, thanks! 收到 👍"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_file(folder: Path, name: str, store_url: str, fake: FakeBotAPI, port: int) -> Path:
    storage = f'url = "{store_url}"\npassword_env = "WORKER_DB_PASSWORD"' if "://" in store_url else f'path = "{store_url}"'
    path = folder / f"{name}-{port}.toml"
    path.write_text(
        f"""
name = "{name}"
features = []
[model]
backend = "scripted"
replies = ["{REPLY}"]
[storage]
{storage}
[limits]
user_messages_per_minute = 100000
user_burst = 100000
chat_messages_per_minute = 100000
chat_burst = 100000
[http]
enabled = true
port = {port}
[console]
enabled = false
[telegram]
enabled = true
token_env = "WORKER_TELEGRAM_TOKEN"
api_base_url = "{fake.base_url}"
private_streaming = "final"
chat_messages_per_second = 100000
overall_messages_per_second = 100000
group_messages_per_minute = 100000
mode = "webhook"
webhook_url = "https://workers.example.org/telegram"
webhook_secret_env = "WORKER_WEBHOOK_SECRET"
""",
        encoding="utf-8",
    )
    return path


class WebhookWorkers:
    def __init__(
        self, fake: FakeBotAPI, folder: Path, store_url: str, *, count: int, password: str = "", name: str = "workers"
    ) -> None:
        self.fake, self.folder, self.store_url, self.count = fake, folder, store_url, count
        self.password, self.name = password, name
        self.ports = [free_port() for _ in range(count)]
        self.processes: list[asyncio.subprocess.Process] = []
        self.exit_codes: list[int] = []
        self._logs: list[Any] = []
        self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64 * count), timeout=60)

    async def __aenter__(self) -> "WebhookWorkers":
        env = dict(
            os.environ,
            WORKER_TELEGRAM_TOKEN=TOKEN,
            WORKER_WEBHOOK_SECRET=SECRET,
            WORKER_DB_PASSWORD=self.password,
            PERSONABOT_DATA_DIR=str(self.folder),  # nothing lands in the user's data folder
        )
        for port in self.ports:
            file = worker_file(self.folder, self.name, self.store_url, self.fake, port)
            log = (self.folder / f"{file.stem}.log").open("wb")  # a file: a full pipe would stall the worker
            self._logs.append(log)
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bots.cli", "run", str(file), "--no-verbose",
                    cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
                )
            )
        try:
            await asyncio.wait_for(asyncio.gather(*(self._ready(n) for n in range(self.count))), 120)
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self._client.aclose()
        for log in self._logs:
            log.close()

    async def _ready(self, worker: int) -> None:
        process, url = self.processes[worker], f"http://127.0.0.1:{self.ports[worker]}/readyz"
        while process.returncode is None:
            try:
                if (await self._client.get(url, timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # polling another process; there is no event to wait on
        raise AssertionError(f"worker {worker} exited with {process.returncode} before it was ready:\n{self.stderr()[worker][-3000:]}")

    async def post(self, worker: int, update: dict[str, Any]) -> int:
        """POST one update to one worker as Telegram (through a load balancer) would; the status."""
        response = await self._client.post(
            f"http://127.0.0.1:{self.ports[worker]}/telegram",
            content=json.dumps(update),
            headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"},
        )
        return response.status_code

    async def stop(self) -> list[int]:
        """SIGTERM every worker (they drain in-flight replies) and collect the exit codes."""
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        self.exit_codes = []
        for process in self.processes:
            try:
                self.exit_codes.append(await asyncio.wait_for(process.wait(), 60))
            except TimeoutError:
                process.kill()
                self.exit_codes.append(await process.wait())
        return self.exit_codes

    def stderr(self) -> list[str]:
        """What each worker logged (warnings and errors: they run with --no-verbose)."""
        for log in self._logs:
            log.flush()
        return [Path(log.name).read_text(errors="replace") for log in self._logs]


def answer_key(call: Any) -> tuple[int, int]:
    """(chat, the user message it answers): the outbox quotes the message it replies to."""
    return int(call.params["chat_id"]), int((call.params.get("reply_parameters") or {}).get("message_id") or 0)
