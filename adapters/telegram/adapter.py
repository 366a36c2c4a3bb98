"""Run one bot on Telegram with python-telegram-bot's Application.

    serve(app, stop)
        getMe (backoff while the network is down; a rejected token is a ConfigError)
        setMyCommands (user menu for everyone, /admin in each admin's private chat)
        plugins: an Outbox for any chat, so scheduled jobs post before anyone writes
        settle what a killed process showed (journal.py), seed the limiter with its sends
        re-answer turns a crash left unanswered (store.unanswered), replay the inbox (inbox.py)
        long polling (PTB Updater) or webhook (aiohttp, secret header checked; on the
        operator HTTP server when [http] is on, so several workers sit behind one address)
        every update -> update_to_event -> app.dispatcher.feed(event, TelegramOutbox)
        stop: stop receiving, finish in-flight replies within shutdown_grace_s, cancel the rest

Readiness (``/readyz``): "telegram" is connected once updates are being received,
and "stopped" after shutdown.

Delivery rule (docs/telegram.md): an update counts as received once it is in the
store's inbox (adapters/telegram/inbox.py), which happens before Telegram may forget it
(the next getUpdates offset, or the webhook's 200). It leaves the inbox once handled:
the turn stored and answered (or what a failed send showed stored as its answer), a
command run, or nothing to do. A turn left unanswered by failed sends is tried again
with backoff (``Intake``). Every message call is journaled just before it is made
(adapters/telegram/journal.py), so a restart never sends a reply twice.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from adapters.telegram.commands import command_aliases, publish_commands
from adapters.telegram.convert import (
    PLATFORM,
    BotIdentity,
    Ignored,
    chat_kind_of,
    parse_conversation_key,
    update_to_event,
)
from adapters.telegram.inbox import Inbox, InboxQueue, Intake
from adapters.telegram.journal import SendJournal
from adapters.telegram.limits import CURRENT_HOOK, TelegramRateLimiter
from adapters.telegram.wire import bot_request
from adapters.telegram.media import with_image
from adapters.telegram.outbox import DraftSupport, TelegramOutbox
from adapters.telegram.settings import TelegramSettings, read_secrets
from core.conversation_lease import ConversationLease, lease_needed
from core.logmask import masking
from core.ports import PluginStore
from core.recovery import is_chat_turn
from core.runtime import Runtime
from core.dispatcher import Context
from core.errors import ConfigError, PlatformError
from core.events import ChatKind, IncomingMessage, UserRef
from core.i18n import choose_locale, t
from core.records import StoredMessage
from core.settings import BotSettings

if TYPE_CHECKING:
    from core.http.operator import Operator

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message"]  # edits, channel posts, reactions…: never fetched, never answered
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BACKOFF_S = 30.0
PRUNE_EVERY_S = 60.0


class TelegramAdapter:
    def __init__(
        self, app: Runtime, token: str, *, webhook_secret: str | None = None, operator: "Operator | None" = None
    ) -> None:
        self.app = app
        self._operator = operator
        self.settings = app.settings.platform(TelegramSettings)
        self._token = token
        self._webhook_secret = webhook_secret
        self._drafts = DraftSupport(self.settings.private_streaming == "draft")
        self._replying: set[asyncio.Task[Any]] = set()  # handlers and recoveries in flight
        self._me: BotIdentity | None = None
        self._aliases: dict[str, str] = {}
        self._webhook_runner: Any = None
        if not isinstance(app.store, PluginStore):  # both bundled stores are
            raise ConfigError("telegram: the store cannot keep the update inbox (it has no key-value namespace)")
        self._inbox = Inbox(app.store)
        self._journal = SendJournal(app.store, app.store)
        self._limiter = TelegramRateLimiter.from_settings(self.settings)
        self._lease = ConversationLease(app.store) if lease_needed(app.settings.storage.url) else None
        self._background: set[asyncio.Task[Any]] = set()  # retries of failed turns, the journal's pruning
        self._queue = InboxQueue(self._inbox)
        self._intake = Intake(app.store, self._queue, self._journal, self.settings.recovery_window_s, self._spawn)
        self.application = self._build()

    def _build(self) -> Application:
        settings = self.settings
        builder = (
            ApplicationBuilder()
            .token(self._token)
            .rate_limiter(self._limiter)
            .request(bot_request())  # tells the limiter when a request is on the socket (wire.py)
            .update_queue(self._queue)
            .concurrent_updates(settings.max_concurrent_updates)
        )
        if settings.api_base_url:
            root = settings.api_base_url.rstrip("/")
            builder = builder.base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
        if settings.mode == "webhook":
            builder = builder.updater(None)
        application = builder.build()
        application.add_handler(TypeHandler(Update, self._on_update))
        application.add_error_handler(self._on_error)
        return application

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set. Raises ConfigError for a rejected token."""
        try:
            if not await self._connect(stop):
                return
            await self.application.initialize()
            self._aliases = command_aliases(self.app.commands)
            await publish_commands(self.application.bot, self.app.commands, self.app.settings.all_admins(), self.app.dispatcher.locale)
            await self._settle()
            await self.application.start()
            self._register_job_outbox()
            await self.start_recovery()
            await self._replay_inbox()
            await self._start_receiving()
            self._report(None)
            log.info("Telegram bot @%s is running (%s)", self._me.username, self.settings.mode)  # type: ignore[union-attr]
            await stop.wait()
        finally:
            await self._shutdown()

    async def _settle(self) -> None:
        """Before anything is answered: store what a killed process showed, count its sends."""
        settled = await self._journal.settle()
        if settled:
            log.info("%d replies a killed process had shown are stored (not sent again)", settled)
        self._limiter.seed(await self._journal.recent_sends())
        self._spawn(self._prune(), "telegram journal pruning")

    async def _replay_inbox(self) -> None:
        pending = await self._inbox.pending(self.application.bot)
        if pending:
            log.info("%d updates a killed process had received are handled now", len(pending))
            await self._queue.replay(pending)

    async def _prune(self) -> None:
        while True:
            try:
                await self._journal.prune()
            except Exception:
                log.exception("pruning the send journal failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _register_job_outbox(self) -> None:
        """Plugin jobs post through the bot to any chat by id (no drafts: nothing streams there)."""
        self.app.seams.outboxes.register(PLATFORM, TelegramOutbox(self.application.bot, interval=None))

    async def _connect(self, stop: asyncio.Event) -> bool:
        """getMe until it works; False if ``stop`` came first."""
        delay = 1.0
        while not stop.is_set():
            try:
                await self.application.bot.initialize()
            except InvalidToken:
                # PTB's message contains the token: never pass it on.
                raise ConfigError(
                    f"telegram: the Bot API rejected the token in ${self.settings.token_env} (wrong or revoked)"
                ) from None
            except BadRequest as error:
                raise PlatformError(f"telegram: getMe failed: {error}") from None
            except (NetworkError, RetryAfter) as error:
                log.warning("cannot reach the Telegram Bot API (%s); retrying in %.0f s", error, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(MAX_BACKOFF_S, delay * 2)
                continue
            except TelegramError as error:
                raise PlatformError(f"telegram: getMe failed: {type(error).__name__}: {error}") from None
            user = self.application.bot.bot
            self._me = BotIdentity(user.id, user.username)
            if self.settings.reply_all_chats and not user.can_read_all_group_messages:
                log.warning(
                    "reply_all_chats is set but @%s has privacy mode on: Telegram only sends it commands,"
                    " mentions and replies (turn privacy off with @BotFather /setprivacy)",
                    user.username,
                )
            return True
        return False

    async def _start_receiving(self) -> None:
        settings = self.settings
        try:
            if settings.mode == "webhook":
                await self._start_webhook()
                return
            assert self.application.updater is not None
            await self.application.updater.start_polling(
                timeout=settings.poll_timeout_s,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=settings.drop_pending_updates,
                bootstrap_retries=3,
                error_callback=_polling_error,
            )
        except TelegramError as error:  # e.g. setWebhook refused the URL
            raise PlatformError(f"telegram: could not start receiving updates: {type(error).__name__}: {error}") from None

    def _report(self, problem: str | None) -> None:
        if self._operator is not None:
            self._operator.health.report(PLATFORM, problem)

    async def _shutdown(self) -> None:
        application = self.application
        self._report("stopped")
        for task in list(self._background):
            task.cancel()  # a retry waiting here stays in the inbox for the next start
        shared = self._operator.server if self._operator is not None else None
        if shared is not None and self.settings.mode == "webhook":
            shared.remove_route("POST", self.settings.webhook_path)  # other workers take the updates now
        if self._webhook_runner is not None:
            await self._webhook_runner.cleanup()
            self._webhook_runner = None
        if application.updater is not None and application.updater.running:
            await application.updater.stop()  # also confirms the fetched updates to Telegram
        if application.running:
            # Application.stop() handles what was fetched and waits for running handlers.
            stopping = asyncio.create_task(application.stop())
            if not await self._wait_replies(stopping):
                log.error("the Telegram adapter did not stop within twice shutdown_grace_s; leaving")
                stopping.cancel()
                return
        await application.shutdown()
        await application.bot.shutdown()

    async def _wait_replies(self, stopping: asyncio.Task[Any]) -> bool:
        """Give replies ``shutdown_grace_s`` to finish, then cancel them (ChatService keeps
        what was shown) and give them as long again to wind down."""
        grace = self.settings.shutdown_grace_s
        _, pending = await asyncio.wait(self._replying | {stopping}, timeout=grace)
        if not pending:
            return True
        log.warning("shutdown: cancelling %d replies still running after %.1f s", len(self._replying), grace)
        for task in list(self._replying):
            task.cancel()
        _, pending = await asyncio.wait(self._replying | {stopping}, timeout=grace)
        return not pending

    # -- updates ---------------------------------------------------------------------
    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self._me is not None
        model = self.app.settings.model
        result = update_to_event(
            update, self._me, reply_all_chats=self.settings.reply_all_chats, command_aliases=self._aliases,
            vision=model.vision,
        )
        event = result if isinstance(result, IncomingMessage) else None
        if not self._intake.begin(update.update_id, event):
            return
        task = asyncio.current_task()
        assert task is not None
        self._replying.add(task)
        event_id = event.event_id if event is not None else (result.event_id or str(update.update_id))  # type: ignore[union-attr]
        try:
            journal = await self._journal.for_event(event_id, streaming=self._streams_edits(event))
            CURRENT_HOOK.set(journal)  # this task's message calls are journaled (limits.py)
            if isinstance(result, Ignored):
                await self._ignored(result, update.update_id)
            else:
                if model.vision and update.message is not None and update.message.text is None:
                    result = await with_image(self.application.bot, update.message, result, model.max_image_bytes)
                outbox = self.outbox_for(result)
                try:
                    await self.app.dispatcher.feed(result, outbox)
                finally:
                    await outbox.aclose()
            await self._intake.finish(update, event, journal)
            self._intake.end(update.update_id, event, finished=True)
        except BaseException:
            self._intake.end(update.update_id, event, finished=False)  # cancelled (shutdown) or failed: the inbox keeps it
            raise
        finally:
            self._replying.discard(task)

    async def _ignored(self, ignored: Ignored, update_id: int) -> None:
        log.debug("update %s ignored: %s", update_id, ignored.reason)
        if not (ignored.notice and ignored.user and ignored.chat_id and ignored.event_id):
            return
        store = self.app.store
        if await self.app.is_banned(ignored.user.qualified) or not await store.record_event(ignored.event_id):
            return
        language = (await store.get_profile(ignored.user.qualified)).preferences.get("language")
        locale = choose_locale([language, ignored.locale, self.app.dispatcher.locale])
        try:
            await self.application.bot.send_message(ignored.chat_id, t(locale, ignored.notice))
        except TelegramError as error:
            log.info("could not send the text-only notice to %s: %s", ignored.user, error)

    def outbox_for(self, event: IncomingMessage) -> TelegramOutbox:
        """Streaming cadence per chat kind, from the bot file."""
        settings = self.settings
        bot = self.application.bot
        def resume() -> tuple[str, str] | None:  # taken by the outbox that sends first (recovery or replay)
            return self._journal.resume.pop(event.event_id, None)

        if event.chat_kind is ChatKind.PRIVATE:
            mode = settings.private_streaming
            interval = None if mode == "final" else settings.private_edit_interval
            return TelegramOutbox(bot, interval=interval, drafts=self._drafts if mode == "draft" else None, resume=resume)
        interval = settings.group_edit_interval if settings.group_streaming == "edit" else None
        return TelegramOutbox(bot, interval=interval, dm_user_id=event.user.user_id, resume=resume)

    def _streams_edits(self, event: IncomingMessage | None) -> bool:
        """Whether a reply to ``event`` is shown growing by edits (so a kill can cut it short)."""
        if event is None:
            return False
        if event.chat_kind is ChatKind.PRIVATE:
            return self.settings.private_streaming == "edit"
        return self.settings.group_streaming == "edit"

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("Telegram update %s failed", update_id, exc_info=context.error)

    # -- crash recovery --------------------------------------------------------------
    async def start_recovery(self) -> list[asyncio.Task[int]]:
        """Start answering user turns stored but never answered (the bot stopped mid-reply).

        The conversations' locks are taken before this returns, so a new message in the
        same chat is answered after the recovered one. Conversations recover
        concurrently, turns of one conversation in order. Turns older than
        ``recovery_window_s``, from banned users, or from a conversation reset since,
        stay as they are. Each task returns how many turns it answered.

        With a shared store (several webhook workers) each conversation's recovery first
        takes its ConversationLease, as a live turn does, then its lock, and checks each
        turn again under them: two workers starting together answer a turn once. (The
        lock is not taken before the lease there: a live turn holding the lease would
        wait for it.)
        """
        since = time.time() - self.settings.recovery_window_s
        by_key: dict[str, list[StoredMessage]] = {}
        for message, key in await self.app.store.unanswered(PLATFORM, since):
            by_key.setdefault(key, []).append(message)
        if not by_key:
            return []
        log.info("re-answering %d turns left unanswered in %d chats", sum(map(len, by_key.values())), len(by_key))
        limit = asyncio.Semaphore(self.settings.max_concurrent_updates)

        async def conversation(lock: asyncio.Lock | None, key: str, messages: list[StoredMessage]) -> int:
            try:
                async with limit:
                    if lock is not None:
                        return sum([await self._reanswer(key, message) for message in messages])
                    assert self._lease is not None
                    async with self._lease.hold(key, f"recovery:{messages[0].id}"), self.app.chat.lock(key):
                        return sum([await self._reanswer(key, message, check=True) for message in messages])
            finally:
                if lock is not None:
                    lock.release()
                self._replying.discard(asyncio.current_task())  # type: ignore[arg-type]

        tasks = []
        for key, messages in by_key.items():
            lock = None
            if self._lease is None:
                lock = self.app.chat.lock(key)
                await lock.acquire()
            tasks.append(asyncio.create_task(conversation(lock, key, messages), name=f"telegram recovery {key}"))
        self._replying.update(tasks)
        return tasks

    async def _reanswer(self, key_text: str, message: StoredMessage, *, check: bool = False) -> int:
        """Answer one stored turn; ``check``: only if it is still unanswered (another worker may have)."""
        try:
            key = parse_conversation_key(key_text)
            user = UserRef.parse(message.user_id or "")
        except ValueError:
            log.warning("cannot recover message %s: bad key %r", message.id, key_text)
            return 0
        store = self.app.store
        conversation = await store.active_conversation(key)
        if conversation.id != message.conversation_id or await self.app.is_banned(user.qualified):
            return 0
        if check and message.event_id is not None:
            found = await store.turn_by_event(message.event_id)
            if found is None or found[1] is not None:
                return 0
        event = IncomingMessage(
            event_id=message.event_id or f"{PLATFORM}:recovered:{message.id}",
            key=key,
            user=user,
            text=message.text,
            chat_kind=chat_kind_of(key.chat_id),
        )
        outbox = self.outbox_for(event)
        journal = await self._journal.for_event(event.event_id, streaming=self._streams_edits(event))
        CURRENT_HOOK.set(journal)  # this task's message calls are journaled (limits.py)
        try:
            await self.app.chat.respond(Context(event=event, outbox=outbox), conversation, message)
            await outbox.aclose()
            await journal.close()
        except Exception:
            log.exception("re-answering message %s in %s failed", message.id, key)
            return 0
        return 1

    # -- webhook ---------------------------------------------------------------------
    async def _start_webhook(self) -> None:
        from aiohttp import web

        settings = self.settings
        shared = self._operator.server if self._operator is not None else None
        if shared is not None:  # [http] is on: one port for the webhook, probes and metrics
            shared.add_route("POST", settings.webhook_path, self._webhook)
        else:
            server = web.Application()
            server.router.add_post(settings.webhook_path, self._webhook)
            runner = web.AppRunner(server, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, settings.webhook_listen, settings.webhook_port)
            await site.start()
            self._webhook_runner = runner
        # Every worker sets the same URL (idempotent); the load balancer spreads the posts.
        await self.application.bot.set_webhook(
            settings.webhook_url,  # type: ignore[arg-type]
            secret_token=self._webhook_secret,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=settings.drop_pending_updates,
        )

    async def _webhook(self, request: Any) -> Any:
        from aiohttp import web

        supplied = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        expected = (self._webhook_secret or "").encode()
        if not expected or not hmac.compare_digest(supplied, expected):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self.application.bot)
        except Exception:
            return web.Response(status=400, text="not a Telegram update")
        await self.application.update_queue.put(update)
        return web.Response()


def _polling_error(error: TelegramError) -> None:
    """PTB retries with backoff (up to 30 s); the operator gets one line per failure."""
    if isinstance(error, Conflict):
        log.error("Telegram polling conflict: another instance uses this token, or a webhook is set (%s)", error)
    else:
        log.warning("Telegram polling failed, retrying: %s: %s", type(error).__name__, error)


async def serve(app: Runtime, stop: asyncio.Event, operator: "Operator | None" = None) -> None:
    """Run the Telegram adapter until ``stop`` is set (bots/cli.py `run` calls this).

    ``operator``: readiness gets the connection state; its HTTP server, if any, serves the webhook.
    """
    token, secret = read_secrets(app.settings)
    with masking(token, secret):
        await TelegramAdapter(app, token, webhook_secret=secret, operator=operator).run(stop)
