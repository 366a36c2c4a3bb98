"""A Discord REST API and gateway on 127.0.0.1, enough of both for discord.py.

Tests run the real adapter (a discord.py Client) against it through ``api_base_url``:

    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        ...settings [discord] api_base_url = fake.base_url, token from fake.token
        await fake.identified.wait()
        await fake.dispatch("MESSAGE_CREATE", fake.message(channel, user, "hi <@bot>"))
        await fake.wait_for(lambda: fake.messages_in(channel))

REST: every request is recorded in ``calls`` (method, path under /api/v10, JSON body,
files); messages sent or edited by the bot are kept in ``messages`` with their current
content. ``fail_next`` injects an error response (a 429 with ``retry_after``, a 403…).
Gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeat ACK, dispatch with
sequence numbers, RESUME (replaying what the client missed, and with
``replay_on_resume`` also events it already had, as Discord may), close codes.
Sharding as Discord does it: ``FakeDiscord(shards=2)`` recommends two shards in
``GET /gateway/bot``; each IDENTIFY names ``[shard_id, shard_count]`` and gets a
session of its own whose READY lists only its guilds (``(guild_id >> 22) % count``);
``dispatch`` sends a guild's event on the connection of the shard that owns it (DMs
on shard 0); a wrong shard count is closed with 4010 (invalid shard).
Channel history: ``post`` puts a user's message in its channel (``GET
channels/ID/messages?after=`` lists it with the bot's, as Discord does) and dispatches
it if the bot is connected; while its socket is down the event is kept for a RESUME,
and with no session (the bot is not running, or ``drop_connection(forget=True)`` made
it IDENTIFY again) it is only in the history. Message create honours ``nonce`` with
``enforce_nonce`` (the same nonce again returns the message it created).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
PERMISSIONS_ALL_TEXT = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 38) | (1 << 14) | (1 << 15)  # view, send, history, threads, embed, attach
SEND_MESSAGES = 1 << 11
TIMESTAMP = "2025-01-01T00:00:00+00:00"


@dataclass
class Call:
    method: str
    path: str  # under /api/v10, e.g. "channels/5/messages"
    body: Any = None  # decoded JSON body (or payload_json of a multipart request)
    files: dict[str, bytes] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Session:
    """One shard's gateway session: its socket and what it was sent (for RESUME)."""

    shard: int
    session_id: str
    ws: web.WebSocketResponse
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    ready: bool = False  # READY and the guilds' GUILD_CREATE went out: posted messages follow them
    waiting: list[dict[str, Any]] = field(default_factory=list)  # posted before that


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as Discord sends it: discord.py decodes only an exact ``application/json`` type."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json", **(headers or {})}
    )


def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name, "avatar": None, "bot": bot}


class FakeDiscord:
    bot_id = 900000000000000001
    app_id = 900000000000000001

    def __init__(self, token: str = "fake-bot-token", *, bot_name: str = "PersonaBot", shards: int = 1) -> None:
        self.token = token
        self.shard_count = shards
        self.bot_name = bot_name
        self.bot_user = user_payload(self.bot_id, bot_name, bot=True)
        self.calls: list[Call] = []
        self.messages: dict[int, dict[str, Any]] = {}  # what the bot sent, current content
        self.interaction_responses: list[dict[str, Any]] = []  # callback bodies, in order
        self.synced: dict[str, list[dict[str, Any]]] = {}  # "global" or guild id -> commands
        self.guilds: dict[int, dict[str, Any]] = {}
        self.identified = asyncio.Event()  # set by any shard's IDENTIFY (or RESUME)
        self.sessions: dict[int, Session] = {}  # shard id -> its live session
        self.identifies = 0
        self.resumes = 0
        self.identify_payloads: list[dict[str, Any]] = []
        self.close_on_identify: int | None = None  # e.g. 4014: disallowed intents
        self.replay_on_resume = 0  # also re-send this many already delivered events on RESUME
        self.app_flags = 1 << 19  # GATEWAY_MESSAGE_CONTENT_LIMITED
        self._failures: list[Failure] = []
        self._interaction_channels: dict[str, int] = {}  # interaction token -> channel id
        self._ids = itertools.count(1)
        self.files: dict[str, bytes] = {}  # attachment id -> bytes (GET /attachments/ID/NAME)
        self.downloads: list[str] = []  # attachment ids the bot fetched
        self.history: dict[int, list[dict[str, Any]]] = {}  # channel id -> users' messages posted there
        self.nonces: dict[str, int] = {}  # nonce -> id of the message created with it
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _attachment(self, request: web.Request) -> web.Response:
        attachment_id = request.match_info["id"]
        self.downloads.append(attachment_id)
        if attachment_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[attachment_id], content_type="application/octet-stream")

    # lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> "FakeDiscord":
        server = web.Application()
        server.router.add_get("/gateway", self._gateway)
        server.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        server.router.add_get("/attachments/{id}/{filename}", self._attachment)
        self._runner = web.AppRunner(server, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in list(self.sessions.values()):
            if not session.ws.closed:
                await session.ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snowflake(self) -> int:
        return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(self._ids) & 0x3FFFFF)

    # world ----------------------------------------------------------------------------
    def add_guild(
        self, *, everyone_permissions: int = PERMISSIONS_ALL_TEXT, owner_id: int = 1, shard: int | None = None
    ) -> int:
        """A server the bot is in; ``shard`` picks an id that shard owns."""
        guild_id = self.snowflake()
        while shard is not None and self.shard_of(guild_id) != shard:
            guild_id += 1 << 22  # the next millisecond: the next shard
        self.guilds[guild_id] = {
            "id": str(guild_id),
            "name": f"guild {guild_id}",
            "icon": None,
            "owner_id": str(owner_id),
            "roles": [self.role_payload(guild_id, "@everyone", everyone_permissions)],
            "emojis": [],
            "stickers": [],
            "features": [],
            "member_count": 1,
            "members": [self.member_payload(self.bot_id, self.bot_name, bot=True)],
            "channels": [],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "unavailable": False,
            "large": False,
            "joined_at": TIMESTAMP,
            "premium_tier": 0,
            "mfa_level": 0,
            "verification_level": 0,
            "explicit_content_filter": 0,
            "default_message_notifications": 0,
            "system_channel_flags": 0,
        }
        return guild_id

    def role_payload(self, role_id: int, name: str, permissions: int) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "permissions": str(permissions),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }

    def add_role(self, guild_id: int, name: str, permissions: int = 0) -> int:
        role_id = self.snowflake()
        self.guilds[guild_id]["roles"].append(self.role_payload(role_id, name, permissions))
        return role_id

    def member_payload(self, user_id: int, name: str, roles: tuple[int, ...] = (), *, bot: bool = False) -> dict[str, Any]:
        return {
            "user": user_payload(user_id, name, bot=bot),
            "roles": [str(role) for role in roles],
            "joined_at": TIMESTAMP,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }

    def add_channel(self, guild_id: int, *, nsfw: bool = False, deny_everyone: int = 0) -> int:
        channel_id = self.snowflake()
        overwrites = [{"id": str(guild_id), "type": 0, "allow": "0", "deny": str(deny_everyone)}] if deny_everyone else []
        self.guilds[guild_id]["channels"].append(
            {
                "id": str(channel_id),
                "type": 0,
                "guild_id": str(guild_id),
                "name": f"channel-{channel_id}",
                "position": len(self.guilds[guild_id]["channels"]),
                "permission_overwrites": overwrites,
                "nsfw": nsfw,
                "parent_id": None,
                "topic": None,
                "rate_limit_per_user": 0,
            }
        )
        return channel_id

    def add_thread(self, guild_id: int, parent_id: int) -> int:
        thread_id = self.snowflake()
        self.guilds[guild_id]["threads"].append(
            {
                "id": str(thread_id),
                "type": 11,
                "guild_id": str(guild_id),
                "parent_id": str(parent_id),
                "owner_id": "1",
                "name": f"thread-{thread_id}",
                "message_count": 0,
                "member_count": 1,
                "rate_limit_per_user": 0,
                "flags": 0,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": TIMESTAMP,
                    "locked": False,
                },
            }
        )
        return thread_id

    def channel_payload(self, channel_id: int) -> dict[str, Any]:
        for guild in self.guilds.values():
            for channel in guild["channels"] + guild["threads"]:
                if channel["id"] == str(channel_id):
                    return channel
        return {"id": str(channel_id), "type": 1}  # a DM

    def guild_of(self, channel_id: int) -> int | None:
        for guild_id, guild in self.guilds.items():
            if any(channel["id"] == str(channel_id) for channel in guild["channels"] + guild["threads"]):
                return guild_id
        return None

    # payloads a user produces ---------------------------------------------------------------
    def message(
        self,
        channel_id: int,
        author_id: int,
        content: str,
        *,
        name: str = "alice",
        roles: tuple[int, ...] = (),
        bot: bool = False,
        mentions_bot: bool = False,
        reply_to: dict[str, Any] | None = None,
        attachments: int = 0,
        message_id: int | None = None,
        files: Sequence[tuple[str, str, bytes]] = (),
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload; ``mentions_bot`` adds the bot to ``mentions`` (put <@id> in content)."""
        guild_id = self.guild_of(channel_id)
        payload: dict[str, Any] = {
            "id": str(message_id or self.snowflake()),
            "channel_id": str(channel_id),
            "author": user_payload(author_id, name, bot=bot),
            "content": content,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {"id": str(self.snowflake()), "filename": f"f{n}.png", "size": 1, "url": "u", "proxy_url": "u"}
                for n in range(attachments)
            ],
            "embeds": [],
            "pinned": False,
            "type": 19 if reply_to else 0,
            "flags": 0,
        }
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            member = self.member_payload(author_id, name, roles, bot=bot)
            member.pop("user")
            payload["member"] = member
        for filename, content_type, data in files:  # real attachments, served by the fake's CDN
            attachment_id = str(self.snowflake())
            self.files[attachment_id] = data
            url = f"{self.base_url}/attachments/{attachment_id}/{filename}"
            payload["attachments"].append({"id": attachment_id, "filename": filename, "size": len(data), "url": url,
                                           "proxy_url": url, "content_type": content_type})
        if mentions_bot:
            mention = dict(self.bot_user)
            if guild_id is not None:
                bot_member = self.member_payload(self.bot_id, self.bot_name, bot=True)
                bot_member.pop("user")
                mention["member"] = bot_member
            payload["mentions"].append(mention)
        if reply_to is not None:
            payload["message_reference"] = {
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                **({"guild_id": str(guild_id)} if guild_id is not None else {}),
            }
            payload["referenced_message"] = reply_to
        return payload

    def interaction(
        self,
        channel_id: int,
        user_id: int,
        name: str,
        options: dict[str, str] | None = None,
        *,
        sub: str | None = None,
        roles: tuple[int, ...] = (),
        permissions: int = 0,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for ``/name [sub] option=value…`` (string options)."""
        guild_id = self.guild_of(channel_id)
        opts = [{"type": 3, "name": key, "value": value} for key, value in (options or {}).items()]
        token = f"interaction-token-{next(self._ids)}"
        self._interaction_channels[token] = channel_id
        if sub is not None:
            opts = [{"type": 1, "name": sub, "options": opts}]
        payload: dict[str, Any] = {
            "id": str(self.snowflake()),
            "application_id": str(self.app_id),
            "type": 2,
            "token": token,
            "version": 1,
            "attachment_size_limit": 25 * 1024 * 1024,
            "locale": "en-US",
            "channel_id": str(channel_id),
            "channel": self.channel_payload(channel_id),
            "app_permissions": str(PERMISSIONS_ALL_TEXT),
            "entitlements": [],
            "authorizing_integration_owners": {},
            "data": {"id": str(self.snowflake()), "name": name, "type": 1, "options": opts},
        }
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            member = self.member_payload(user_id, f"user{user_id}", roles)
            member["permissions"] = str(permissions)
            payload["member"] = member
            payload["context"] = 0
        else:
            payload["user"] = user_payload(user_id, f"user{user_id}")
            payload["context"] = 1
        return payload

    # what the bot did --------------------------------------------------------------------
    def messages_in(self, channel_id: int) -> list[dict[str, Any]]:
        """Channel messages the bot sent (interaction answers are in ``interaction_messages``)."""
        return [
            message
            for message in self.messages.values()
            if message["channel_id"] == str(channel_id) and "interaction_token" not in message
        ]

    def texts_in(self, channel_id: int) -> list[str]:
        return [message["content"] for message in self.messages_in(channel_id)]

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and re.fullmatch(pattern, call.path)]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true; re-checked after every request and gateway message."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        *,
        retry_after: float = 0.0,
        code: int = 0,
        times: int = 1,
    ) -> None:
        """The next ``times`` requests matching ``method`` and the ``path`` regex get ``status``."""
        body: dict[str, Any] = {"message": f"fake {status}", "code": code}
        headers: dict[str, str] = {}
        if status == 429:
            body.update(retry_after=retry_after, **{"global": False})
            headers = {"Via": "1.1 google", "Retry-After": str(retry_after), "X-RateLimit-Scope": "user"}
        self._failures.append(Failure(method, re.compile(path), status, body, headers, times))

    # gateway ------------------------------------------------------------------------------
    def shard_of(self, guild_id: int | None) -> int:
        """The shard that receives a guild's events (Discord's formula); DMs go to shard 0."""
        return 0 if guild_id is None else (guild_id >> 22) % self.shard_count

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send one DISPATCH to the shard that owns its guild; returns its sequence number."""
        guild = data.get("guild_id")
        shard = self.shard_of(int(guild) if guild is not None else None)
        session = self.sessions.get(shard)
        assert session is not None and not session.ws.closed, f"no gateway connection for shard {shard}"
        return await self._send(session, event, data)

    async def post(self, data: dict[str, Any]) -> int:
        """A user's message (a ``message`` payload): into its channel's history, and on the
        gateway as MESSAGE_CREATE when the bot has a session (kept for its RESUME while the
        socket is down); 0 when no session got it (the bot catches up from the history)."""
        self.history.setdefault(int(data["channel_id"]), []).append(data)
        guild = data.get("guild_id")
        session = self.sessions.get(self.shard_of(int(guild) if guild is not None else None))
        if session is None:
            return 0
        if not session.ready:  # Discord sends a guild's messages after its GUILD_CREATE
            session.waiting.append(data)
            return -1
        if session.ws.closed:
            session.seq += 1
            session.sent.append({"op": 0, "t": "MESSAGE_CREATE", "s": session.seq, "d": data})
            return session.seq
        try:
            return await self._send(session, "MESSAGE_CREATE", data)
        except (ConnectionResetError, RuntimeError):  # the socket went down meanwhile: kept for the RESUME
            return session.seq

    async def _send(self, session: Session, event: str, data: dict[str, Any]) -> int:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.sent.append(frame)
        await session.ws.send_json(frame)
        return session.seq

    async def drop_connection(self, code: int = 4000, shard: int = 0, *, forget: bool = False) -> None:
        """Close a shard's gateway socket as a network problem would; discord.py reconnects and
        RESUMEs (``forget``: the session is gone, so it must IDENTIFY again and misses what came meanwhile)."""
        self.identified.clear()
        session = self.sessions[shard]
        if forget:
            del self.sessions[shard]
        await session.ws.close(code=code)

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identify_payloads.append(data)
        shard, count = data.get("shard") or [0, 1]
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
        elif self.close_on_identify is not None:
            await ws.close(code=self.close_on_identify, message=b"Disallowed intent(s).")
        elif count != self.shard_count or not 0 <= shard < count:
            await ws.close(code=4010, message=b"Invalid shard.")
        else:
            self.identifies += 1
            session = self.sessions[shard] = Session(shard, f"session-{shard}-{self.identifies}", ws)
            mine = [guild for guild_id, guild in self.guilds.items() if self.shard_of(guild_id) == shard]
            ready = {
                "v": 10,
                "user": self.bot_user,
                "guilds": [{"id": guild["id"], "unavailable": True} for guild in mine],
                "session_id": session.session_id,
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
                "application": {"id": str(self.app_id), "flags": self.app_flags},
                "private_channels": [],
                "shard": [shard, count],
            }
            await self._send(session, "READY", ready)
            for guild in mine:
                await self._send(session, "GUILD_CREATE", guild)
            session.ready = True
            for waiting in session.waiting:
                await self._send(session, "MESSAGE_CREATE", waiting)
            session.waiting.clear()
            self.identified.set()

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = next((s for s in self.sessions.values() if s.session_id == data.get("session_id")), None)
        if session is None:
            await ws.send_json({"op": 9, "s": None, "t": None, "d": False})  # invalid session: identify again
            return
        self.resumes += 1
        session.ws = ws
        seq = data.get("seq") or 0
        missed = [frame for frame in session.sent if frame["s"] > seq]
        delivered = [frame for frame in session.sent if frame["s"] <= seq]
        again = delivered[-self.replay_on_resume :] if self.replay_on_resume else []
        for old in again + missed:
            await ws.send_json(old)
        session.seq += 1
        await ws.send_json({"op": 0, "t": "RESUMED", "s": session.seq, "d": {}})
        self.identified.set()

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "s": None, "t": None, "d": {"heartbeat_interval": 45000}})
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            op, data = message["op"], message.get("d")
            if op == 1:
                await ws.send_json({"op": 11, "s": None, "t": None, "d": None})
            elif op == 2:
                await self._identify(ws, data)
            elif op == 6:
                await self._resume(ws, data)
            await self._notify()
        await self._notify()
        return ws

    # REST -------------------------------------------------------------------------------------
    async def _read_call(self, request: web.Request) -> Call:
        call = Call(request.method, request.match_info["path"], query=dict(request.query))
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    call.body = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    call.files[part.filename or part.name] = bytes(await part.read())  # type: ignore[union-attr]
        elif request.can_read_body:
            raw = await request.read()
            call.body = json.loads(raw) if raw else None
        return call

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        call = await self._read_call(request)
        self.calls.append(call)
        try:
            for failure in self._failures:
                if failure.times > 0 and failure.method == call.method and failure.path.fullmatch(call.path):
                    failure.times -= 1
                    return _json(failure.body, status=failure.status, headers=failure.headers)
            webhook = call.path.startswith(("webhooks/", "interactions/"))
            if not webhook and request.headers.get("Authorization") != f"Bot {self.token}":
                return _json({"message": "401: Unauthorized", "code": 0}, status=401)
            return self._route(call)
        finally:
            await self._notify()

    def _new_message(self, channel_id: str, body: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        message_id = self.snowflake()
        message = {
            "id": str(message_id),
            "channel_id": channel_id,
            "author": self.bot_user,
            "content": body.get("content") or "",
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {"id": str(self.snowflake()), "filename": name, "size": len(data), "url": "u", "proxy_url": "u"}
                for name, data in files.items()
            ],
            "embeds": [],
            "pinned": False,
            "type": 19 if body.get("message_reference") else 0,
            "flags": body.get("flags", 0),
            "allowed_mentions": body.get("allowed_mentions"),  # kept for assertions
            "message_reference": body.get("message_reference"),
            "files": files,
        }
        self.messages[message_id] = message
        return message

    def _channel_history(self, channel_id: int, query: dict[str, str]) -> list[dict[str, Any]]:
        """Messages after ``after`` (the oldest ``limit`` of them), newest first, as Discord lists them."""
        after, limit = int(query.get("after") or 0), min(100, int(query.get("limit") or 50))
        mine = [self._public(m) for m in self.messages.values() if m["channel_id"] == str(channel_id)]
        every = sorted((m for m in self.history.get(channel_id, []) + mine if int(m["id"]) > after), key=lambda m: int(m["id"]))
        return list(reversed(every[:limit]))

    @staticmethod
    def _public(message: dict[str, Any]) -> dict[str, Any]:
        private = ("allowed_mentions", "files", "original", "deferred", "loading", "interaction_token")
        public = {key: value for key, value in message.items() if key not in private}
        if public.get("message_reference") is None:
            public.pop("message_reference", None)
        return public

    def _edit(self, message_id: int, body: dict[str, Any]) -> web.Response:
        message = self.messages.get(message_id)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        if "content" in body:
            message["content"] = body["content"]
        message["loading"] = False
        message["edited_timestamp"] = TIMESTAMP
        return _json(self._public(message))

    def _route(self, call: Call) -> web.Response:
        path, method, body = call.path, call.method, call.body or {}
        if (method, path) == ("GET", "users/@me"):
            return _json(self.bot_user)
        if (method, path) == ("GET", "oauth2/applications/@me"):
            return _json(
                {
                    "id": str(self.app_id),
                    "name": self.bot_name,
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": user_payload(1, "owner"),
                    "verify_key": "0" * 64,
                    "flags": self.app_flags,
                }
            )
        if (method, path) == ("GET", "gateway/bot"):
            return _json(
                {
                    "url": f"ws://127.0.0.1:{self.port}/gateway",
                    "shards": self.shard_count,
                    "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
                }
            )
        if (method, path) == ("POST", "users/@me/channels"):
            recipient = body["recipient_id"]
            return _json(
                {"id": str(10**17 + int(recipient) % 10**17), "type": 1, "recipients": [user_payload(int(recipient), "dm")]}
            )
        if match := re.fullmatch(r"channels/(\d+)/messages", path):
            if method == "POST":
                nonce = body.get("nonce") if body.get("enforce_nonce") else None
                if nonce is not None and nonce in self.nonces:  # Discord: the message this nonce made
                    return _json(self._public(self.messages[self.nonces[nonce]]))
                message = self._new_message(match[1], body, call.files)
                if nonce is not None:
                    self.nonces[nonce] = int(message["id"])
                return _json(self._public(message))
            if method == "GET":
                return _json(self._channel_history(int(match[1]), call.query))
        if match := re.fullmatch(r"channels/(\d+)/messages/(\d+)", path):
            if method == "PATCH":
                return self._edit(int(match[2]), body)
        if re.fullmatch(r"channels/(\d+)/typing", path) and method == "POST":
            return web.Response(status=204)
        if match := re.fullmatch(r"interactions/(\d+)/([^/]+)/callback", path):
            return self._interaction_callback(match[1], match[2], body, call.files)
        if match := re.fullmatch(r"webhooks/(\d+)/([^/]+)", path):
            if method == "POST":
                original = self._original_of(match[2])
                if original is not None and self.messages[original].get("loading"):
                    # Discord: the first follow-up after a deferral takes the "thinking…" message's place
                    # (and its visibility).
                    message = self.messages[original]
                    message.update(content=body.get("content") or "", loading=False)
                    message["allowed_mentions"] = body.get("allowed_mentions")
                else:
                    message = self._new_message(self._interaction_channel(match[2]), body, call.files)
                    message["interaction_token"] = match[2]
                return _json(self._public(message))
        if match := re.fullmatch(r"webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", path):
            target = self._original_of(match[2]) if match[3] == "@original" else int(match[3])
            if target is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            if method == "PATCH":
                return self._edit(target, body)
            if method == "DELETE":
                self.messages.pop(target, None)
                return web.Response(status=204)
            if method == "GET":
                return _json(self._public(self.messages[target]))
        if match := re.fullmatch(r"applications/(\d+)(?:/guilds/(\d+))?/commands", path):
            if method == "PUT":
                commands = [dict(command, id=str(self.snowflake()), application_id=str(self.app_id), version="1") for command in body]
                self.synced[match[2] or "global"] = commands
                return _json(commands)
        return _json({"message": f"fake: no route {method} {path}", "code": 0}, status=404)

    def _original_of(self, token: str) -> int | None:
        for message_id, message in self.messages.items():
            if message.get("interaction_token") == token and message.get("original"):
                return message_id
        return None

    def _interaction_callback(self, interaction_id: str, token: str, body: dict[str, Any], files: dict[str, bytes]) -> web.Response:
        self.interaction_responses.append(body)
        data = body.get("data") or {}
        ephemeral = bool(data.get("flags", 0) & 64)
        message = self._new_message(self._interaction_channel(token), data, files)
        message["interaction_token"] = token
        message["original"] = True
        message["deferred"] = message["loading"] = body["type"] == 5
        response: dict[str, Any] = {
            "interaction": {
                "id": interaction_id,
                "type": 2,
                "response_message_id": message["id"],
                "response_message_loading": body["type"] == 5,
                "response_message_ephemeral": ephemeral,
            }
        }
        if body["type"] == 4:
            response["resource"] = {"type": 4, "message": self._public(message)}
        return _json(response)

    def interaction_messages(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """What the bot showed for one interaction: the original response and follow-ups."""
        return [m for m in self.messages.values() if m.get("interaction_token") == payload["token"]]

    def _interaction_channel(self, token: str) -> str:
        return str(self._interaction_channels.get(token, 0))
