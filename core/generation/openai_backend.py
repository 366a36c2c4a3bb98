"""Any OpenAI-compatible chat server (vLLM, TGI, llama.cpp server, Ollama, OpenAI) over HTTP.

    gen = OpenAIGenerator(base_url="http://127.0.0.1:8000/v1", model="qwen2.5-7b-instruct",
                          api_key_env="VLLM_API_KEY", tokenizer="Qwen/Qwen2.5-7B-Instruct")

``base_url`` ends with the API version (``…/v1``), as for the ``openai`` SDK; replies
stream from ``POST {base_url}/chat/completions`` as server-sent events. Failed requests
are retried with exponential backoff (honouring ``Retry-After``) on 429, 5xx and
connection errors, as long as no reply text was streamed yet. At most ``max_in_flight``
requests run at once; more wait their turn (within their own timeout).

``count_tokens`` is exact when ``tokenizer`` names the served model's tokenizer (a local
folder or a hub id, with its chat template); otherwise it is an estimate that errs high
(about 4 ASCII characters or 1 CJK character per token, plus 4 per message).

Tools (core/tools): ``request.tools`` go out in the standard ``tools`` field; streamed
``tool_calls`` deltas are assembled by index and the last chunk carries the calls
(``FinishReason.TOOL_CALLS``). A server that refuses to stream with tools (HTTP 400,
422 or 501 to a streamed request with tools) is asked again without streaming, and
from then on for every request with tools. Images of user turns go as ``image_url``
content parts when ``vision`` is on (else they are left out).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from core.errors import ConfigError, GenerationError
from core.events import ChatMessage, Chunk, FinishReason, GenerationParams, GenerationRequest, ToolCall
from core.generation.relay import Interrupts, relay
from core.generation.text import approx_message_tokens

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.PoolTimeout)
_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "tool_calls": FinishReason.TOOL_CALLS}
_NO_STREAMED_TOOLS = frozenset({400, 422, 501})  # answers of servers that cannot stream tool calls
MAX_STOP_STRINGS = 4  # OpenAI's limit; longer lists are still applied on our side


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _Outcome:
    finish_reason: str | None = None
    done = False  # [DONE] seen or a finish_reason given

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, str]] = {}  # tool-call deltas by index: id, name, arguments

    def add_call_delta(self, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        index = delta.get("index", len(self.calls))
        call = self.calls.setdefault(index if isinstance(index, int) else len(self.calls), {"id": "", "name": "", "arguments": ""})
        function = delta.get("function") or {}
        call["id"] = delta.get("id") or call["id"]
        call["name"] += function.get("name") or ""
        arguments = function.get("arguments")
        call["arguments"] += arguments if isinstance(arguments, str) else json.dumps(arguments) if arguments else ""

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"])
            for index, call in sorted(self.calls.items())
            if call["name"]
        )


class OpenAIGenerator:
    """The :class:`core.ports.Generator` for OpenAI-compatible servers."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_env: str | None = None,
        tokenizer: str | None = None,
        context_window: int = 4096,
        max_in_flight: int = 8,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        extra_params: bool = False,
        vision: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``api_key`` or the name of the environment variable that holds it; never logged.

        ``extra_params`` also sends ``top_k`` and ``repetition_penalty`` (vLLM, llama.cpp
        and Ollama accept them; OpenAI itself rejects them).
        """
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"model.base_url must start with http:// or https://, got {base_url!r}")
        if max_in_flight < 1:
            raise ConfigError("max_in_flight must be at least 1")
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ConfigError(f"environment variable {api_key_env} (model.api_key_env) is not set")
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.context_window = context_window
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_params = extra_params
        self.vision = vision
        self._stream_tools = True  # False once the server refused a streamed request with tools
        self._api_key_env = api_key_env
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._waiting = 0  # requests waiting for one of the max_in_flight slots
        self._interrupts = Interrupts()
        self._sleep = asyncio.sleep  # replaced in tests to observe backoff without waiting
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(connect=connect_timeout_s, read=None, write=connect_timeout_s, pool=None),
            transport=transport,
        )
        self._renderer = None
        if tokenizer:
            self._renderer = self._load_renderer(tokenizer)

    @staticmethod
    def _load_renderer(tokenizer: str) -> Any:
        from transformers import AutoTokenizer

        from core.generation.prompt import PromptRenderer

        try:
            return PromptRenderer(AutoTokenizer.from_pretrained(tokenizer))
        except Exception as exc:
            raise GenerationError(f"cannot load tokenizer {tokenizer!r} for exact token counts: {exc}") from exc

    def __repr__(self) -> str:
        return f"OpenAIGenerator(base_url={self.base_url!r}, model={self.model!r})"

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        if self._renderer is not None:
            return self._renderer.count(messages)
        return approx_message_tokens(messages)

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        params: GenerationParams = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [self._message(m) for m in request.messages],
            "stream": True,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop[:MAX_STOP_STRINGS])
        if params.seed is not None:
            body["seed"] = params.seed
        if request.user_id:
            body["user"] = request.user_id  # lets the server apply per-user limits
        if self.extra_params:
            body["top_k"] = params.top_k
            body["repetition_penalty"] = params.repetition_penalty
        if request.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": json.loads(t.parameters)}}
                for t in request.tools
            ]
            body["tool_choice"] = request.tool_choice
            body["stream"] = self._stream_tools
        return body

    def _message(self, message: ChatMessage) -> dict[str, Any]:
        if message.role == "tool":
            return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
        out: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            out["content"] = message.content or None
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in message.tool_calls
            ]
        if message.images and self.vision:
            parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
            out["content"] = parts + [{"type": "image_url", "image_url": {"url": image.url}} for image in message.images]
        return out

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if not request.messages:
            raise GenerationError("cannot generate a reply to an empty conversation")
        return self._stream(request)

    def cancel(self, conversation_id: str) -> int:
        """Stop in-flight replies of one conversation (they end with CANCELLED)."""
        return self._interrupts.fire(conversation_id)

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        outcome = _Outcome()
        deadline = time.monotonic() + request.params.timeout_s

        async def finish() -> FinishReason:
            if not outcome.done:
                return FinishReason.ERROR  # the connection ended mid-reply
            return _FINISH.get(outcome.finish_reason or "stop", FinishReason.STOP)

        with self._interrupts.watch(request.conversation_id) as interrupt:
            pieces = self._pieces(self._body(request), outcome)
            async for chunk in relay(pieces, stop_producer=lambda: None, finish=finish, stops=request.params.stop, deadline=deadline, interrupt=interrupt):
                if chunk.finish_reason in (FinishReason.TOOL_CALLS, FinishReason.STOP) and outcome.calls:
                    chunk = Chunk(chunk.text, FinishReason.TOOL_CALLS, outcome.tool_calls())
                yield chunk

    async def _pieces(self, body: dict[str, Any], outcome: _Outcome) -> AsyncIterator[str]:
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._in_flight += 1
        try:
            response = await self._open(body)
            try:
                if response.headers.get("content-type", "").startswith("application/json"):
                    text = self._whole_reply(await response.aread(), outcome)
                    if text:
                        yield text
                    return
                async for line in response.aiter_lines():
                    text = self._event_text(line, outcome)
                    if text is None:
                        return
                    if text:
                        yield text
            except (httpx.HTTPError, httpx.StreamError) as exc:
                raise GenerationError(f"{self.name}: the reply stream broke: {type(exc).__name__}: {exc}") from exc
            finally:
                await response.aclose()
        finally:
            self._in_flight -= 1
            self._slots.release()

    def _event_text(self, line: str, outcome: _Outcome) -> str | None:
        """The reply text in one SSE line: '' for comments, ``event:`` lines and role-only
        deltas, None for the final ``data: [DONE]``."""
        if not line.startswith("data:"):
            return ""
        data = line[5:].strip()
        if data == "[DONE]":
            outcome.done = True
            return None
        try:
            event = json.loads(data)
        except ValueError:
            raise GenerationError(f"{self.name}: the server sent invalid JSON in its stream: {data[:80]!r}") from None
        if not isinstance(event, dict):
            raise GenerationError(f"{self.name}: unexpected stream event {data[:80]!r}")
        if event.get("error"):
            error = event["error"]
            raise GenerationError(f"{self.name}: server error: {error.get('message', error) if isinstance(error, dict) else error}")
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return ""  # e.g. a final usage-only event
        choice = choices[0]
        if choice.get("finish_reason"):
            outcome.finish_reason, outcome.done = choice["finish_reason"], True
        delta = choice.get("delta") or {}
        for call_delta in delta.get("tool_calls") or ():
            outcome.add_call_delta(call_delta)
        content = delta.get("content")
        return content if isinstance(content, str) else ""

    def _whole_reply(self, raw: bytes, outcome: _Outcome) -> str:
        """A server that ignored ``stream: true`` and sent one JSON completion."""
        try:
            choice = json.loads(raw)["choices"][0]
            text = choice["message"].get("content") or ""
            for index, call in enumerate(choice["message"].get("tool_calls") or ()):
                outcome.add_call_delta({"index": index, **call})
        except (ValueError, KeyError, IndexError, TypeError):
            raise GenerationError(f"{self.name}: the server sent an invalid completion: {raw[:80]!r}") from None
        outcome.finish_reason, outcome.done = choice.get("finish_reason") or "stop", True
        return text

    async def _open(self, body: dict[str, Any]) -> httpx.Response:
        """POST the request; retry while the failure is temporary. Returns a 200 streaming response."""
        url = f"{self.base_url}/chat/completions"
        attempt = 0
        while True:
            retry_after = None
            try:
                response = await self._client.send(self._client.build_request("POST", url, json=body), stream=True)
            except _RETRY_ERRORS as exc:
                problem = f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}"
            except httpx.HTTPError as exc:
                raise GenerationError(f"{self.name}: request failed: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code == 200:
                    return response
                detail = (await response.aread())[:300].decode("utf-8", "replace")
                await response.aclose()
                problem = f"HTTP {response.status_code} from {url}: {detail}"
                if body.get("tools") and body.get("stream") and response.status_code in _NO_STREAMED_TOOLS:
                    log.warning("%s: %s; asking again without streaming (tools)", self.name, problem)
                    self._stream_tools = False
                    body = {**body, "stream": False}
                    continue
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code in (401, 403):
                        problem += f" (check the API key in {self._api_key_env or 'model.api_key_env'})"
                    raise GenerationError(f"{self.name}: {problem}")
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt == self.max_retries:
                raise GenerationError(f"{self.name}: giving up after {attempt + 1} attempts: {problem}")
            delay = retry_after if retry_after is not None else min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
            log.warning("%s: %s; retry %d/%d in %.2fs", self.name, problem, attempt + 1, self.max_retries, delay)
            await self._sleep(min(delay, self.max_backoff_s))
            attempt += 1

    async def health(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": "openai", "model": self.model, "base_url": self.base_url, "in_flight": self._in_flight, "waiting": self._waiting}
        try:
            response = await self._client.get(f"{self.base_url}/models", timeout=5.0)
            info["ok"] = response.status_code == 200
            info["status"] = response.status_code
        except httpx.HTTPError as exc:
            info["ok"], info["error"] = False, f"{type(exc).__name__}: {exc}"
        return info

    async def aclose(self) -> None:
        self._interrupts.fire_all()
        await self._client.aclose()
