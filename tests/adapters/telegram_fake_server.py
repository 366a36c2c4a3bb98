"""A Telegram Bot API server fake on 127.0.0.1, for tests through the wire.

The real python-telegram-bot Application talks HTTP to it (``api_base_url``). It keeps
an update queue with real getUpdates offset semantics (an offset confirms every update
below it; long polling waits for new ones), records every call, keeps what the bot
put on screen per chat, validates like Telegram does (empty text, 4096 UTF-16 units,
"message is not modified", command names), and can answer errors on demand, including
429 with ``retry_after`` followed by a flood window in which every message call gets
429 again, as Telegram does.

Tests wait on :meth:`FakeBotAPI.wait_for` (an asyncio.Condition notified on every
call), never on sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456789:AAH-fake_TOKEN_for-tests_0123456789"
BOT_ID = 123456789
BOT_USERNAME = "persona_test_bot"
MESSAGE_METHODS = {"sendMessage", "editMessageText", "sendDocument", "sendMessageDraft"}
# Parameters Telegram reads as strings; every other form field is JSON-encoded by PTB.
STRING_PARAMS = {"text", "caption", "url", "secret_token", "parse_mode", "action", "language_code"}
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_MENTION = re.compile(r"@[A-Za-z0-9_]{5,32}")


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_offset(text: str, index: int) -> int:
    return utf16(text[:index])


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float  # loop.time() when received
    status: int = 200
    left: float | None = None  # loop.time() when the answer left (None: it never did)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class Failure:
    status: int
    description: str
    retry_after: int | None = None


class FakeBotAPI:
    def __init__(
        self, token: str = TOKEN, *, bot_id: int = BOT_ID, username: str = BOT_USERNAME, read_all_groups: bool = False
    ) -> None:
        self.token = token
        self.bot = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Persona",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": read_all_groups,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []  # unconfirmed, oldest first
        self.cut_off = 0  # requests whose sender died before they were read (a killed bot, reset)
        self.delivered: list[dict[str, Any]] = []  # every update getUpdates returned, in order
        self.screen: dict[int, dict[int, dict[str, Any]]] = {}  # chat -> message id -> message
        self.drafts: dict[tuple[int, int], str] = {}
        self.documents: list[tuple[int, str, bytes]] = []
        self.commands: dict[str, list[dict[str, str]]] = {}  # scope as JSON -> commands
        self.webhook: dict[str, Any] | None = None
        self.refused_chats: set[int] = set()  # users who never started the bot
        self.unknown_chats: set[int] = set()
        self.drafts_supported = True
        self.files: dict[str, bytes] = {}  # file_id -> bytes users "uploaded" (getFile, downloads)
        self.chat_admins: dict[int, list[int]] = {}  # group chat id -> its administrators' user ids, owner first
        self.downloads: list[str] = []  # file paths the bot downloaded
        self._failures: dict[str, list[Failure]] = {}
        self._flood_until = 0.0
        self._update_ids = itertools.count(1000)
        self._message_ids: dict[int, itertools.count] = {}
        self._allowed_updates: list[str] | None = None
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> "FakeBotAPI":
        server = web.Application()
        server.router.add_route("POST", "/bot{token}/{method}", self._handle)
        server.router.add_route("GET", "/bot{token}/{method}", self._handle)
        server.router.add_route("GET", "/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        self._closing.set()  # releases long polls
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests use --------------------------------------------------------------
    def fail(self, method: str, status: int = 502, description: str = "Bad Gateway", times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([Failure(status, description)] * times)

    def flood(self, method: str = "sendMessage", retry_after: int = 1, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` get 429 and open a flood window."""
        failure = Failure(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        self._failures.setdefault(method, []).extend([failure] * times)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Wait until ``predicate()`` is truthy (checked after every call the bot makes)."""
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def calls_of(self, method: str, ok: bool | None = True) -> list[Call]:
        return [c for c in self.calls if c.method == method and (ok is None or (c.status == 200) == ok)]

    def texts(self, chat_id: int) -> list[str]:
        """What the bot's messages in ``chat_id`` show now, oldest first."""
        return [message.get("text", message.get("caption", "")) for message in self.screen.get(chat_id, {}).values()]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return list(self.screen.get(chat_id, {}).values())

    def push_update(self, update: dict[str, Any]) -> int:
        update = {"update_id": next(self._update_ids), **update}
        self.updates.append(update)
        self._notify_soon()
        return update["update_id"]

    def user_message(self, text: str | None, **message: Any) -> int:
        """Queue a message as a Telegram client would send it (entities included); returns its update id."""
        update = self.message_update(text, **message)
        self.updates.append(update)
        self._notify_soon()
        return update["update_id"]

    def message_update(
        self,
        text: str | None,
        *,
        chat_id: int = 555,
        user_id: int | None = None,
        first_name: str = "Ann",
        is_bot: bool = False,
        thread_id: int | None = None,
        reply_to: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        kind: str = "message",
    ) -> int:
        """An update as Telegram would send it (entities included), not queued: what a webhook receives."""
        user_id = user_id if user_id is not None else chat_id
        chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        if chat_id > 0:
            chat["first_name"] = first_name
        else:
            chat["title"] = "Test group"
            chat["is_forum"] = thread_id is not None
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": user_id, "is_bot": is_bot, "first_name": first_name},
        }
        if text is not None:
            message["text"] = text
            entities = self._entities(text)
            if entities:
                message["entities"] = entities
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            reply_to = reply_to or {
                "message_id": thread_id,
                "date": int(time.time()),
                "chat": chat,
                "from": {"id": user_id, "is_bot": False, "first_name": first_name},
                "forum_topic_created": {"name": "Topic", "icon_color": 7322096},
            }
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(extra or {})
        return {"update_id": next(self._update_ids), kind: message}

    def photo(self, data: bytes, *, file_id: str = "photo1", announced: int | None = None) -> dict[str, Any]:
        """The ``photo`` field of a message whose largest size holds ``data`` (``announced``: the size Telegram reports)."""
        self.files[file_id] = data
        size = len(data) if announced is None else announced
        return {"photo": [{"file_id": f"{file_id}-thumb", "file_unique_id": "t", "width": 9, "height": 9, "file_size": 10},
                          {"file_id": file_id, "file_unique_id": file_id, "width": 90, "height": 90, "file_size": size}]}

    def document(self, data: bytes, file_name: str, mime_type: str, *, file_id: str = "doc1") -> dict[str, Any]:
        self.files[file_id] = data
        return {"document": {"file_id": file_id, "file_unique_id": file_id, "file_name": file_name,
                             "mime_type": mime_type, "file_size": len(data)}}

    # -- the server ------------------------------------------------------------------
    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    @staticmethod
    def _entities(text: str) -> list[dict[str, Any]]:
        entities = []
        command = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if command:
            entities.append({"type": "bot_command", "offset": 0, "length": utf16(command.group())})
        for match in _MENTION.finditer(text):
            entities.append(
                {"type": "mention", "offset": _utf16_offset(text, match.start()), "length": utf16(match.group())}
            )
        return entities

    def _notify_soon(self) -> None:
        """Wake long polls; a no-op outside an event loop (updates built for pure tests)."""

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending_notify = loop.create_task(notify())

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            return await request.json(), files
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files[name] = (value.filename, value.file.read())
            elif name in STRING_PARAMS:
                params[name] = value
            else:
                try:
                    params[name] = json.loads(value)
                except ValueError:
                    params[name] = value
        return params, files

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params, files = await self._params(request)
        except ConnectionResetError:  # the client died (a kill) before its request was read
            self.cut_off += 1
            raise
        call = Call(method, params, asyncio.get_running_loop().time(), files=files)
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()
        try:
            if request.match_info["token"] != self.token:
                raise _Error(Failure(401, "Unauthorized"))
            self._inject_failure(method)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise _Error(Failure(404, "Not Found"))
            result = await handler(params, files)
            body: dict[str, Any] = {"ok": True, "result": result}
        except _Error as error:
            call.status = error.failure.status
            body = {"ok": False, "error_code": error.failure.status, "description": error.failure.description}
            if error.failure.retry_after is not None:
                body["parameters"] = {"retry_after": error.failure.retry_after}
        async with self._changed:
            self._changed.notify_all()
        await self._on_the_way_back(method)
        call.left = asyncio.get_running_loop().time()
        return web.json_response(body, status=call.status)

    async def _on_the_way_back(self, method: str) -> None:
        """Where a subclass delays answers (a slow network); the call is recorded on arrival."""

    def _inject_failure(self, method: str) -> None:
        now = asyncio.get_running_loop().time()
        if method in MESSAGE_METHODS and now < self._flood_until:
            remaining = math.ceil(self._flood_until - now)
            raise _Error(Failure(429, f"Too Many Requests: retry after {remaining}", remaining))
        queue = self._failures.get(method)
        if queue:
            failure = queue.pop(0)
            if failure.retry_after is not None:
                self._flood_until = now + failure.retry_after
            raise _Error(failure)

    def _message(self, chat_id: int, **fields: Any) -> dict[str, Any]:
        message = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": {k: self.bot[k] for k in ("id", "is_bot", "first_name", "username")},
            **fields,
        }
        self.screen.setdefault(chat_id, {})[message["message_id"]] = message
        return message

    def _check_chat(self, chat_id: int) -> None:
        if chat_id in self.refused_chats:
            raise _Error(Failure(403, "Forbidden: bot can't initiate conversation with a user"))
        if chat_id in self.unknown_chats:
            raise _Error(Failure(400, "Bad Request: chat not found"))

    @staticmethod
    def _check_text(text: Any, limit: int = 4096, what: str = "message text") -> str:
        if not isinstance(text, str) or not text.strip():
            raise _Error(Failure(400, f"Bad Request: {what} is empty"))
        text = text.strip()  # Telegram trims messages
        if utf16(text) > limit:
            raise _Error(Failure(400, "Bad Request: message is too long"))
        return text

    async def _m_getFile(self, params: dict[str, Any], files: Any) -> dict[str, Any]:
        file_id = params["file_id"]
        if file_id not in self.files:
            raise _Error(Failure(400, "Bad Request: invalid file_id"))
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": len(self.files[file_id]),
                "file_path": f"photos/{file_id}.jpg"}

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        self.downloads.append(path)
        file_id = path.rsplit("/", 1)[-1].removesuffix(".jpg")
        if file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    async def _m_getMe(self, params: dict[str, Any], files: Any) -> dict[str, Any]:
        return self.bot

    async def _m_getChatAdministrators(self, params: dict[str, Any], files: Any) -> list[dict[str, Any]]:
        chat_id = int(params["chat_id"])
        if chat_id not in self.chat_admins:
            raise _Error(Failure(400, "Bad Request: chat not found"))
        rights = dict.fromkeys(
            ("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
             "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
             "can_post_stories", "can_edit_stories", "can_delete_stories"),
            False,
        )
        members = []
        for n, user_id in enumerate(self.chat_admins[chat_id]):
            user = {"id": user_id, "is_bot": False, "first_name": f"admin{user_id}"}
            members.append({"status": "creator", "user": user, "is_anonymous": False} if n == 0
                           else {"status": "administrator", "user": user, **rights})
        return members

    async def _m_getUpdates(self, params: dict[str, Any], files: Any) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise _Error(Failure(409, "Conflict: can't use getUpdates method while webhook is active"))
        offset = int(params.get("offset") or 0)
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if "allowed_updates" in params:
            self._allowed_updates = params["allowed_updates"] or None
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)

        def pending() -> list[dict[str, Any]]:
            wanted = self._allowed_updates
            return [u for u in self.updates if wanted is None or any(kind in u for kind in wanted)][:limit]

        if not pending() and timeout > 0:
            waiting = asyncio.ensure_future(self.wait_for(lambda: pending() or self._closing.is_set(), timeout))
            try:
                await waiting
            except TimeoutError:
                pass
        updates = pending()
        self.delivered.extend(updates)
        return updates

    async def _m_deleteWebhook(self, params: dict[str, Any], files: Any) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self.updates.clear()
        return True

    async def _m_setWebhook(self, params: dict[str, Any], files: Any) -> bool:
        self.webhook = params
        if params.get("drop_pending_updates"):
            self.updates.clear()
        return True

    async def _m_setMyCommands(self, params: dict[str, Any], files: Any) -> bool:
        commands = params.get("commands") or []
        for command in commands:
            if not _COMMAND.match(command.get("command", "")) or not 1 <= len(command.get("description", "")) <= 256:
                raise _Error(Failure(400, "Bad Request: BOT_COMMAND_INVALID"))
        scope = params.get("scope") or {"type": "default"}
        if scope.get("type") == "chat":
            self._check_chat(int(scope["chat_id"]))
        language = params.get("language_code")  # a menu per language beside the default one
        self.commands[json.dumps(scope, sort_keys=True) + (f"|{language}" if language else "")] = commands
        return True

    async def _m_sendChatAction(self, params: dict[str, Any], files: Any) -> bool:
        self._check_chat(int(params["chat_id"]))
        return True

    async def _m_sendMessage(self, params: dict[str, Any], files: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        self._check_chat(chat_id)
        text = self._check_text(params.get("text"))
        fields: dict[str, Any] = {"text": text}
        if params.get("message_thread_id"):
            fields["message_thread_id"] = params["message_thread_id"]
        reply = params.get("reply_parameters")
        if reply:
            fields["reply_to_message_id"] = reply["message_id"]  # kept for assertions
        return self._message(chat_id, **fields)

    async def _m_editMessageText(self, params: dict[str, Any], files: Any) -> dict[str, Any]:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        message = self.screen.get(chat_id, {}).get(message_id)
        if message is None:
            raise _Error(Failure(400, "Bad Request: message to edit not found"))
        text = self._check_text(params.get("text"))
        if message.get("text") == text:
            raise _Error(
                Failure(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup"
                    " are exactly the same as a current content and reply markup of the message",
                )
            )
        message["text"] = text
        message["edit_date"] = int(time.time())
        return message

    async def _m_sendMessageDraft(self, params: dict[str, Any], files: Any) -> bool:
        if not self.drafts_supported:
            raise _Error(Failure(404, "Not Found"))
        chat_id, draft_id = int(params["chat_id"]), int(params["draft_id"])
        if chat_id <= 0 or draft_id == 0:
            raise _Error(Failure(400, "Bad Request: TEXTDRAFT_PEER_INVALID"))
        self.drafts[(chat_id, draft_id)] = self._check_text(params.get("text"))
        return True

    async def _m_sendDocument(self, params: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        self._check_chat(chat_id)
        if "document" not in files:
            raise _Error(Failure(400, "Bad Request: there is no document in the request"))
        filename, data = files["document"]
        self.documents.append((chat_id, filename, data))
        fields: dict[str, Any] = {"document": {"file_id": f"doc{len(self.documents)}", "file_unique_id": "u", "file_name": filename}}
        if params.get("caption"):
            fields["caption"] = self._check_text(params["caption"], 1024, "caption")
        return self._message(chat_id, **fields)


class _Error(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.description)
        self.failure = failure
