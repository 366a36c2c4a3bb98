"""``[telegram] group_admins_are_admins``: a group's own administrators are bot admins there.

Why. A bot added to many groups should not need every group's moderators listed in the
bot file. With the setting on, the administrators Telegram reports for a group
(``getChatAdministrators``: the owner and the admins) are that group's admins
(``seams.chat_admin_policies``): in that group only (not in DMs, not in other groups) they
switch the group's persona and run the admin commands that act on the chat they are
typed in (``CommandSpec.chat_admin``: ``/admin persona-default NAME chat``). Bot-wide ones
(``/admin ban``, ``audit``, ``stats``, ``approve``, admin-only tools) stay with the bot's
own admins: a group's moderator is nobody's admin elsewhere.

How. Core's admin check is synchronous (``seams.admin_policies``), the Bot API is not, so
:class:`GroupAdmins` is two parts: an access-stage middleware (after ``drop_banned``) that,
for a group message addressed to the bot or a command, fetches that group's administrators
when the cached list is older than ``group_admins_ttl_s``; and the policy, which reads the
cache. A failed fetch keeps the last list (or none) and is logged; the event goes on. The
adapter fetches only ``message`` updates, so promotions and demotions are seen when the
cache expires, not at once (no ``chat_member`` updates).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

from adapters.telegram.settings import TelegramSettings, read_secrets
from core.dispatcher import Context, Handler
from core.events import ChatKind, IncomingMessage
from core.runtime import Runtime

log = logging.getLogger(__name__)

PLATFORM = "telegram"


class AdminLister(Protocol):
    """What the cache needs from the Bot API: a group's administrators' user ids."""

    async def __call__(self, chat_id: str) -> frozenset[str]: ...


class BotApiAdmins:
    """``getChatAdministrators`` through a Bot of its own (opened at first use, closed with the bot)."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._bot: Any = None

    async def __call__(self, chat_id: str) -> frozenset[str]:
        if self._bot is None:
            from telegram import Bot

            token, _ = read_secrets(self._settings)
            root = self._settings.platform(TelegramSettings).api_base_url
            options = {"base_url": f"{root.rstrip('/')}/bot"} if root else {}
            self._bot = Bot(token, **options)
            await self._bot.initialize()
        members = await self._bot.get_chat_administrators(int(chat_id))
        return frozenset(str(member.user.id) for member in members)

    async def aclose(self) -> None:
        if self._bot is not None:
            await self._bot.shutdown()


class GroupAdmins:
    """The cache, its refreshing middleware and the admin policy (see the module docstring)."""

    def __init__(self, lister: AdminLister, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._lister, self._ttl_s, self._clock = lister, ttl_s, clock
        self._admins: dict[str, tuple[float, frozenset[str]]] = {}  # chat id -> (fetched at, user ids)

    def policy(self, event: IncomingMessage) -> bool:
        if event.chat_kind is not ChatKind.GROUP or event.key.platform != PLATFORM:
            return False
        cached = self._admins.get(event.key.chat_id)
        return cached is not None and event.user.user_id in cached[1]

    async def refresh(self, ctx: Context, call_next: Handler) -> None:
        event = ctx.event
        if event.chat_kind is ChatKind.GROUP and (event.command is not None or event.addressed_to_bot):
            await self._ensure_fresh(event.key.chat_id)
        await call_next(ctx)

    async def _ensure_fresh(self, chat_id: str) -> None:
        now = self._clock()
        cached = self._admins.get(chat_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return
        try:
            admins = await self._lister(chat_id)
        except Exception as error:  # the API is down or the bot was removed: keep what we knew
            log.warning("telegram: could not fetch the administrators of chat %s: %s", chat_id, error)
            admins = cached[1] if cached else frozenset()
        self._admins[chat_id] = (now, admins)


def group_admins_feature(group_admins: GroupAdmins, lister: BotApiAdmins | None = None) -> Callable:
    """The feature that puts the refreshing middleware in the access stage (and closes the lister)."""

    async def setup(bot: Runtime, stack: AsyncExitStack) -> None:
        bot.seams.middlewares.add("access", "telegram_group_admins", group_admins.refresh, after="drop_banned")
        bot.seams.chat_admin_policies[PLATFORM] = group_admins.policy
        if lister is not None:
            stack.push_async_callback(lister.aclose)

    return setup
