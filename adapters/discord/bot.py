"""The Discord client: gateway messages and slash commands into the bot's dispatcher.

    async with build_app(settings) as bot:
        await serve(bot, stop)          # returns when ``stop`` is set

discord.py does the protocol work: the gateway connection, heartbeats, RESUME after
a disconnect, and HTTP 429 handling (it waits ``retry_after``; a wait over
``MAX_RATE_LIMIT_WAIT`` fails the call instead). This module counts the 429s it
sees and turns fatal start-up problems (bad token, missing intent) into ConfigError.
Duplicate deliveries after a resume are dropped by the core's ``dedupe`` middleware,
keyed by the message or interaction id.

Sharding: the client is discord.py's ``AutoShardedClient``. Without ``shard_count`` it
runs every shard Discord recommends in this process; with ``shard_count`` and
``shard_ids`` it runs that slice only, so several processes split a big bot
(docs/scaling.md). Readiness (``/readyz``) is "discord" connected once every shard of
the slice is ready, and not while one is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from core.dispatcher import Context
from core.errors import ConfigError, PersonabotError, PlatformError
from core.events import ChatKind, ConversationKey, IncomingMessage, UserRef
from core.records import StoredMessage
from core.http.health import Health
from adapters.discord.settings import DiscordSettings
from core.settings import BotSettings

from adapters.discord.catchup import CatchUp
from adapters.discord.commands import CoreCommandTree, sync_commands
from adapters.discord.convert import PLATFORM, message_event
from adapters.discord.media import with_image
from adapters.discord.outbox import ChannelOutbox, Pacer, no_pings
from core.ports import PluginStore

if TYPE_CHECKING:
    from core.http.operator import Operator
    from core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_RATE_LIMIT_WAIT = 30.0  # seconds; discord.py's floor for max_ratelimit_timeout
DISCORD_API = Route.BASE
INTENT_HELP = (
    "discord: the Message Content intent is not enabled for this bot. Open"
    " https://discord.com/developers/applications, choose the application, then Bot →"
    " Privileged Gateway Intents → enable 'Message Content Intent' and save."
)


def api_root(base_url: str) -> str:
    """``http://host:8080`` -> ``http://host:8080/api/v10``; a URL that names a version is kept."""
    base = base_url.rstrip("/")
    return base if re.search(r"/api/v\d+$", base) else f"{base}/api/v10"


@contextlib.contextmanager
def api_endpoint(base_url: str | None) -> Iterator[None]:
    """Point discord.py at another API server for the duration (REST now, gateway by ``use_gateway``).

    discord.py keeps both addresses in class attributes, so the override applies to the
    whole process: one Discord API per process. The defaults come back on exit.
    """
    if base_url is None:
        yield
        return
    root = api_root(base_url)
    if Route.BASE not in (DISCORD_API, root):
        raise ConfigError(f"discord: another Discord API ({Route.BASE}) is already in use in this process")
    previous_base, previous_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = root
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = previous_base, previous_gateway


async def use_gateway(client: discord.Client) -> str:
    """Ask the configured server where its gateway is (GET /gateway/bot) and connect there."""
    try:
        _, url, _ = await client.http.get_bot_gateway()
    except discord.GatewayNotFound as error:
        raise PlatformError(f"discord: {Route.BASE} did not say where its gateway is") from error
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    return url


def without_voice() -> None:
    """The bot never joins voice: skip discord.py's warnings about missing voice libraries."""
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False


MESSAGE_CALL = re.compile(r"/channels/(\d+)/messages(?:/\d+)?$")  # create or edit a message (paced)
RECOVERY_WINDOW_S = 3600.0  # turns a crash left unanswered for longer than this stay unanswered
CATCH_UP_CONCURRENCY = 8  # channels whose history is read at once after a READY


class DiscordBot(discord.AutoShardedClient):
    """One bot's connection (its shards). Options here are for tests; the rest comes from the bot file.

    ``identify_spacing``: seconds between two shards' IDENTIFY (Discord allows one per
    5 s); ``health``: where the shards' state is reported for ``/readyz``; ``pacer``: the
    message budgets (adapters/discord/outbox.py; tests pass fast ones).
    """

    def __init__(
        self,
        app: "Runtime",
        *,
        guild_ready_timeout: float = 2.0,
        auto_defer_after: float = 2.0,
        identify_spacing: float = 5.0,
        health: Health | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        without_voice()
        options = app.settings.platform(DiscordSettings)
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: enable it in the Developer Portal (see docs/discord.md)
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._pace_message_call)
        trace.on_request_end.append(self._count_rate_limit)
        super().__init__(
            intents=intents,
            allowed_mentions=no_pings(),
            http_trace=trace,
            max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT,
            guild_ready_timeout=guild_ready_timeout,
            shard_count=options.shard_count,
            shard_ids=list(options.shard_ids) if options.shard_ids is not None else None,
        )
        self.app = app
        self.options = options
        self._identify_spacing = identify_spacing
        self._health = health
        self._shards_up: set[int] = set()
        self._report("connecting")
        self.rate_limit_hits = 0  # HTTP 429 responses seen (discord.py retried them after waiting)
        self.tree = CoreCommandTree(
            self, app, edit_interval=self.edit_interval, auto_defer_after=auto_defer_after, track=self.tracked
        )
        self._handlers: set[asyncio.Task[Any]] = set()
        self._muted_channels: set[int] = set()
        self._recovery: list[tuple[asyncio.Lock, str, list[StoredMessage]]] | None = None  # taken before the gateway
        if not isinstance(app.store, PluginStore):  # both bundled stores are
            raise ConfigError("discord: the store cannot keep the channel cursors (it has no key-value namespace)")
        self._catchup = CatchUp(app.store, RECOVERY_WINDOW_S)
        self.pacer = pacer or Pacer()
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def edit_interval(self) -> float | None:
        return self.options.edit_interval if self.options.stream else None

    async def _pace_message_call(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        """Each attempt to create or edit a message waits for its slot in Discord's budgets,
        discord.py's retries included (they would otherwise land uncounted in the window)."""
        if params.method in ("POST", "PATCH"):
            match = MESSAGE_CALL.search(params.url.path)
            if match is not None:
                await self.pacer.slot(int(match.group(1)))

    async def _count_rate_limit(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status == 429:
            self.rate_limit_hits += 1
            # The path may hold an interaction token: log the method only.
            log.warning("discord: rate limited (HTTP 429) on a %s request; %d so far", params.method, self.rate_limit_hits)

    async def setup_hook(self) -> None:
        """After login, before the gateway: the turns to recover, then the slash commands if
        the bot file asks to publish them."""
        await self._take_recovery()
        await self._catchup.load()
        options = self.options
        if not (options.sync_guilds or options.sync_global):
            return
        try:
            published = await sync_commands(self.tree, guilds=options.sync_guilds, globally=options.sync_global)
        except PersonabotError as error:  # the bot still chats; the operator sees why commands are missing
            log.error("%s", error)
        else:
            log.info("discord: slash commands published: %s", published)

    async def close(self) -> None:
        """discord.py's sharded ``close`` needs the event queue its login creates; a bot that
        never logged in (missing or rejected token) closes like a plain client."""
        if not hasattr(self, "_AutoShardedClient__queue"):
            await discord.Client.close(self)
            return
        await super().close()

    # -- shards ----------------------------------------------------------------------
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(self._identify_spacing)

    def owned_shards(self) -> list[int]:
        """This process's shards (known once connecting: the count may come from Discord)."""
        return list(self.shard_ids) if self.shard_ids is not None else list(range(self.shard_count or 1))

    def _report(self, problem: str | None) -> None:
        if self._health is not None:
            self._health.report(PLATFORM, problem)

    def _shard_state_changed(self) -> None:
        missing = sorted(set(self.owned_shards()) - self._shards_up)
        self._report(f"shards not connected: {missing}" if missing else None)

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("discord: shard %d of %s ready", shard_id, self.shard_count)
        self._shards_up.add(shard_id)
        self._shard_state_changed()
        await self._start_catch_up(shard_id)

    @staticmethod
    def _may_catch_up(channel: Any) -> bool:
        """Whether the bot may read the history of a server channel and answer there."""
        me = channel.guild.me
        if me is None or not hasattr(channel, "permissions_for"):
            return False
        permissions = channel.permissions_for(me)
        may_send = permissions.send_messages_in_threads if isinstance(channel, discord.Thread) else permissions.send_messages
        return bool(may_send and permissions.read_message_history)

    async def _start_catch_up(self, shard_id: int) -> None:
        """A new session (a start, or after an invalid one): read what it never received (catchup.py)."""
        mine = [guild for guild in self.guilds if guild.shard_id == shard_id]
        points = await self._catchup.plan(
            [channel.id for guild in mine for channel in guild.text_channels if self._may_catch_up(channel)]
        )
        channels = []
        for channel_id, after in points.items():
            channel = self.get_channel(channel_id)
            guild = getattr(channel, "guild", None)
            if guild is None and shard_id == 0:  # a DM (not cached after a start)
                channels.append((self.get_partial_messageable(channel_id), after))
            elif guild is not None and guild.shard_id == shard_id and self._may_catch_up(channel):
                channels.append((channel, after))
            else:
                self._catchup.skip(channel_id)
        if not channels:
            return
        limit = asyncio.Semaphore(CATCH_UP_CONCURRENCY)

        async def catch_up(channel: Any, after: int) -> None:
            handlers: list[asyncio.Task[None]] = []
            try:
                async with limit:
                    async for message in channel.history(after=discord.Object(after), limit=None, oldest_first=True):
                        # as if just arrived: handled concurrently, a conversation's turns in order (its lock)
                        handlers.append(asyncio.create_task(self.on_message(message)))
                        await asyncio.sleep(0)  # each takes its place in the order before the next
                await asyncio.gather(*handlers, return_exceptions=True)
                log.debug("discord: channel %s: %d messages read after %s", channel.id, len(handlers), after)
            except (discord.HTTPException, aiohttp.ClientError) as error:
                # The cursor stays where it is (the channel is still catching up): the next READY reads again.
                log.warning("discord: could not read the history of channel %s: %s", channel.id, error)
                await asyncio.gather(*handlers, return_exceptions=True)
                return
            await self._catchup.end(channel.id)

        for channel, after in channels:
            task = asyncio.create_task(catch_up(channel, after), name=f"discord catch-up {channel.id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._catchup.release()
        self._shards_up.add(shard_id)
        self._shard_state_changed()

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._catchup.hold()
        self._shards_up.discard(shard_id)
        self._shard_state_changed()

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("discord: connected as %s (%s) in %d servers", self.user, self.user.id, len(self.guilds))
        # scheduled jobs post to any channel, thread or DM by id from now on
        self.app.seams.outboxes.register(
            PLATFORM, ChannelOutbox(self, None, in_server=False, edit_interval=None)
        )
        self.start_recovery()

    async def _take_recovery(self) -> None:
        """Before the gateway connects (so no live message of this process is in flight):
        the user turns stored but never answered (the process died mid-reply), each
        conversation's lock taken, so a new message there is answered after them."""
        if self._recovery is not None:
            return
        by_key: dict[str, list[StoredMessage]] = {}
        for message, key in await self.app.store.unanswered(PLATFORM, time.time() - RECOVERY_WINDOW_S):
            by_key.setdefault(key, []).append(message)
        self._recovery = []
        for key, messages in by_key.items():
            lock = self.app.chat.lock(key)
            await lock.acquire()
            self._recovery.append((lock, key, messages))

    def start_recovery(self) -> list[asyncio.Task[int]]:
        """Answer the turns taken by :meth:`_take_recovery`, once per process (at the first READY).

        As on Telegram (adapters/telegram/adapter.py): conversations recover concurrently,
        turns of one in order; turns older than RECOVERY_WINDOW_S, from banned users or
        from a conversation reset since stay as they are. The replies post to the channel
        (no reference: the message may be gone).
        """
        taken, self._recovery = self._recovery or [], []
        if taken:
            log.info("discord: re-answering %d turns left unanswered in %d channels",
                     sum(len(messages) for _, _, messages in taken), len(taken))

        async def conversation(lock: asyncio.Lock, key: str, messages: list[StoredMessage]) -> int:
            try:
                with self.tracked():
                    return sum([await self._reanswer(key, message) for message in messages])
            finally:
                lock.release()

        return [asyncio.create_task(conversation(*item), name=f"discord recovery {item[1]}") for item in taken]

    async def _reanswer(self, key_text: str, message: StoredMessage) -> int:
        platform, _, rest = key_text.partition(":")
        chat_id, _, thread_id = rest.partition("/")
        try:
            key = ConversationKey(platform, str(int(chat_id)), str(int(thread_id)) if thread_id else None)
            user = UserRef.parse(message.user_id or "")
        except ValueError:
            log.warning("discord: cannot recover message %s: bad key %r", message.id, key_text)
            return 0
        store = self.app.store
        conversation = await store.active_conversation(key)
        if platform != PLATFORM or conversation.id != message.conversation_id or await self.app.is_banned(user.qualified):
            return 0
        channel = self.get_channel(int(thread_id or chat_id))
        in_server = getattr(channel, "guild", None) is not None
        event_id = message.event_id or f"{PLATFORM}:recovered:{message.id}"
        answered = event_id.removeprefix(f"{PLATFORM}:message:") if event_id.startswith(f"{PLATFORM}:message:") else None
        event = IncomingMessage(
            event_id=event_id,
            key=key,
            user=user,
            text=message.text,
            chat_kind=ChatKind.GROUP if in_server else ChatKind.PRIVATE,
            message_id=answered,
        )
        # The answer's nonces are the live ones: a reply the killed process sent comes back, not twice.
        outbox = ChannelOutbox(self, None, in_server=in_server, edit_interval=None)
        try:
            await self.app.chat.respond(Context(event=event, outbox=outbox), conversation, message)
            await outbox.aclose()
        except Exception:
            log.exception("discord: re-answering message %s in %s failed", message.id, key)
            return 0
        return 1

    def _send_permissions(self, message: discord.Message) -> tuple[bool, bool]:
        """(may send here, may reference messages here), from the cached permissions."""
        guild, channel = message.guild, message.channel
        if guild is None or guild.me is None or not hasattr(channel, "permissions_for"):
            return True, guild is not None
        try:
            permissions = channel.permissions_for(guild.me)  # type: ignore[union-attr]
        except discord.ClientException:  # a thread whose parent is not cached: let Discord decide
            return True, True
        may_send = permissions.send_messages_in_threads if isinstance(channel, discord.Thread) else permissions.send_messages
        return may_send, permissions.read_message_history

    async def on_message(self, message: discord.Message) -> None:
        """Every message the bot sees (gateway or catch-up) moves its channel's cursor once handled."""
        if self.user is None:
            return
        channel_id = message.channel.id
        await self._catchup.received(channel_id, message.id)
        await self._handle(message)
        await self._catchup.handled(channel_id, message.id)  # not reached when cancelled: the cursor waits

    async def _handle(self, message: discord.Message) -> None:
        assert self.user is not None
        model = self.app.settings.model
        event = message_event(
            message, self.user.id, self.options.channels, vision=model.vision, bots=self.app.settings.access.bots
        )
        if event is None:
            return
        may_send, may_reference = self._send_permissions(message)
        if not may_send:  # answering would fail: skip the model and the retries, say it once
            if message.channel.id not in self._muted_channels:
                self._muted_channels.add(message.channel.id)
                log.warning("discord: no permission to send in channel %s; ignoring messages there", message.channel.id)
            return
        self._muted_channels.discard(message.channel.id)
        if model.vision:  # fetched only when the bot may answer
            event = await with_image(message, event, model.max_image_bytes)
        outbox = ChannelOutbox(
            self,
            message.author,
            in_server=message.guild is not None,
            can_reference=may_reference,
            edit_interval=self.edit_interval,
        )
        with self.tracked():
            await self.app.dispatcher.feed(event, outbox)

    @contextlib.contextmanager
    def tracked(self) -> Iterator[None]:
        """Mark the running task as answering someone, so shutdown lets it finish (``drain``)."""
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            yield
        finally:
            self._handlers.discard(task)

    async def drain(self, grace: float) -> None:
        """Let replies in progress finish for up to ``grace`` seconds, then cancel the rest."""
        pending = {task for task in self._handlers if not task.done()}
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.warning("discord: %d replies still running at shutdown were cancelled", len(late))
            await asyncio.gather(*late, return_exceptions=True)


def _start_error(error: BaseException, token_env: str) -> PersonabotError:
    """The clear message for a connection that ended for good."""
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return ConfigError(INTENT_HELP)
    if isinstance(error, discord.ConnectionClosed) and error.code == 4004:
        return ConfigError(f"discord: the gateway rejected the token in ${token_env}")
    return PlatformError(f"discord: connection lost: {type(error).__name__}: {error}")


async def serve(app: "Runtime", stop: asyncio.Event, operator: "Operator | None" = None) -> None:
    """Run the Discord adapter until ``stop`` is set. Raises ConfigError for a bad token or intent.

    ``operator``: readiness gets the shards' state (``personabot run`` passes it).
    """
    await run_bot(DiscordBot(app, health=operator.health if operator is not None else None), stop)


async def login(client: discord.Client, options: DiscordSettings) -> None:
    """Log in over HTTP with the token from the environment; a rejected token is a ConfigError."""
    token = BotSettings.secret(options.token_env, "discord.token_env")
    try:
        await client.login(token)
    except discord.LoginFailure:
        raise ConfigError(
            f"discord: the token in ${options.token_env} was rejected (401); copy it again from"
            " the Developer Portal (Bot → Reset Token)"
        ) from None
    except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
        raise PlatformError(f"discord: cannot log in at {Route.BASE}: {error}") from error


async def run_bot(bot: DiscordBot, stop: asyncio.Event) -> None:
    """Log in, publish commands if asked, hold the gateway until ``stop``; then drain and close."""
    options = bot.options
    with api_endpoint(options.api_base_url):
        try:
            await login(bot, options)
            if options.api_base_url:
                log.info("discord: using the API at %s, gateway %s", Route.BASE, await use_gateway(bot))
            connection = asyncio.create_task(bot.connect(reconnect=True), name="discord-gateway")
            stopping = asyncio.create_task(stop.wait(), name="discord-stop")
            try:
                await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if connection.done():
                error = connection.exception()
                if error is not None:
                    raise _start_error(error, options.token_env) from error
                return
            await bot.drain(options.shutdown_grace_s)
            await bot.close()
            with contextlib.suppress(Exception):
                await connection
        finally:
            await bot.close()
            bot._report("stopped")
            if bot.rate_limit_hits:
                log.info("discord: %d rate-limited requests during this run", bot.rate_limit_hits)
