"""A small OpenAI-compatible server on 127.0.0.1 (random port) that streams scripted SSE."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field


def delta(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def finish(reason: str = "stop") -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})


@dataclass
class Reply:
    status: int = 200
    events: list[str] = field(default_factory=list)  # payloads of ``data:`` lines
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # a plain body instead of an event stream
    done: bool = True  # end with ``data: [DONE]``
    hang: bool = False  # keep the connection open afterwards, until the server closes
    gate: asyncio.Event | None = None  # wait for it before answering


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict] = []  # {"path", "headers", "json"}
        self.arrived = asyncio.Event()
        self._closing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.base_url = ""

    async def __aenter__(self) -> "FakeOpenAI":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc) -> None:
        self._closing.set()
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode()
            headers = {}
            while (line := (await reader.readline()).decode().strip()):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", 0)))
            path = request_line.split()[1]
            self.requests.append({"path": path, "headers": headers, "json": json.loads(raw) if raw else None})
            self.arrived.set()
            if path.endswith("/models"):
                reply = Reply(body=json.dumps({"data": [{"id": "fake"}]}))
            else:
                reply = self.replies.popleft() if self.replies else Reply(events=[delta("ok"), finish()])
            if reply.gate is not None:
                await reply.gate.wait()
            kind = "application/json" if reply.body is not None else "text/event-stream"
            head = [f"HTTP/1.1 {reply.status} X", f"Content-Type: {kind}", "Connection: close"]
            head += [f"{k}: {v}" for k, v in reply.headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            if reply.body is not None:
                writer.write(reply.body.encode())
            else:
                for event in reply.events:
                    writer.write(f"data: {event}\n\n".encode())
                    await writer.drain()
                if reply.done and reply.status == 200:
                    writer.write(b"data: [DONE]\n\n")
            await writer.drain()
            if reply.hang:
                await self._closing.wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
