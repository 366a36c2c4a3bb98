"""Which persona setting is in force in a chat, and who set it (issue 17: persona precedence).

The order is ChatService.resolve_persona's: this conversation's choice, the chat's default,
the server's default, the user's own choice (DMs), the bot's default, the bot file. In
groups only admins switch the conversation's persona (unless ``[personas]
members_switch_in_groups``); an admin's chat default replaces a member's earlier switch.
Who set each is kept beside it in the settings table (``persona_by``).
"""

from __future__ import annotations

from core.chat import chat_scope, space_scope
from core.events import ChatKind, IncomingMessage
from core.i18n import Msg, _
from core.personas import PersonaLibrary
from core.ports import Store
from core.records import Conversation
from core.settings import BotSettings

BY = "persona_by"  # who set the persona of a scope
CONVERSATION_BY = "conversation_persona_by"  # (chat scope) who switched the conversation's persona


async def persona_source(
    store: Store, personas: PersonaLibrary, settings: BotSettings, event: IncomingMessage, conversation: Conversation
) -> Msg:
    """What decides the persona here, as a sentence for the reader."""
    chat = chat_scope(event)
    if conversation.persona and conversation.persona in personas:
        who = await store.get_setting(chat, CONVERSATION_BY)
        if who:
            return _("In force: this conversation's choice, set by {user}.", user=who)
        return _("In force: this conversation's choice.")
    candidates = [(chat, _("In force: this chat's default, set by {user}."), _("In force: this chat's default."))]
    space = space_scope(event)
    if space:
        candidates.append((space, _("In force: this server's default, set by {user}."), _("In force: this server's default.")))
    for scope, with_who, without in candidates:
        name = await store.get_setting(scope, "persona")
        if name and name in personas:
            who = await store.get_setting(scope, BY)
            return Msg(with_who.msgid, {"user": who}) if who else without
    if event.chat_kind is not ChatKind.GROUP:
        name = (await store.get_profile(event.user.qualified)).preferences.get("persona")
        if name and name in personas:
            return _("In force: your own choice.")
    name = await store.get_setting("bot", "persona")
    if name and name in personas:
        who = await store.get_setting("bot", BY)
        return _("In force: the bot's default, set by {user}.", user=who) if who else _("In force: the bot's default.")
    return _("In force: the bot file's default ({name}).", name=settings.personas.default)
