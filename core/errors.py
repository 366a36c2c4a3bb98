"""The one exception tree of personabot.

Everything the bot raises on purpose derives from :class:`PersonabotError`, so the
dispatcher's single error hook can turn any of them into a short answer for the user
and one log line for the operator::

    PersonabotError            base; ``user_message`` is safe to show to a chat user
    ├── ConfigError            a bot, persona or plugin file is malformed (CLI exits 2)
    ├── PermissionDenied       the caller lacks rights (admin command, banned user)
    ├── RateLimited            a per-user/chat/global limit was hit; ``retry_after`` s
    ├── InputRejected          a message the bot will not process (empty, moderated)
    ├── UnknownCommand         a command nobody registered (hint to /help)
    ├── CommandUsageError      a known command with bad arguments
    ├── NotFound               a persona, memory or user that does not exist
    ├── StorageError           the database failed (the operator sees the cause)
    ├── GenerationError        a model backend failed or timed out
    │   └── GenerationBusy     the generation queue is full, try again shortly
    ├── PlatformError          an adapter's platform call failed after retries
    └── PluginError            a plugin's handler, job or middleware failed (it is named in the log)

Adapters translate their platform's exceptions into this tree at the edge.
"""

from __future__ import annotations

from core.i18n import N_


class PersonabotError(Exception):
    """Base class. ``user_message`` is what a chat user may read; ``str(exc)`` is for logs."""

    user_message = N_("Sorry, something went wrong. Please try again.")

    def __init__(self, message: str = "", *, user_message: str | None = None) -> None:
        super().__init__(message or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class ConfigError(PersonabotError):
    """A configuration file is invalid; the message names the file and the field."""

    user_message = N_("The bot is misconfigured.")


class PermissionDenied(PersonabotError):
    user_message = N_("You are not allowed to do that.")


class RateLimited(PersonabotError):
    user_message = N_("You are sending messages too fast. Please wait a moment.")

    def __init__(self, message: str = "", *, retry_after: float = 0.0, user_message: str | None = None) -> None:
        super().__init__(message, user_message=user_message)
        self.retry_after = retry_after


class InputRejected(PersonabotError):
    user_message = N_("I can't process that message.")


class UnknownCommand(PersonabotError):
    user_message = N_("Unknown command. Send /help to see what I can do.")


class CommandUsageError(PersonabotError):
    user_message = N_("Wrong arguments. Send /help for usage.")


class NotFound(PersonabotError):
    user_message = N_("Not found.")


class StorageError(PersonabotError):
    user_message = N_("I couldn't save or read that right now. Please try again.")


class GenerationError(PersonabotError):
    user_message = N_("I couldn't come up with a reply right now. Please try again.")


class GenerationBusy(GenerationError):
    user_message = N_("I'm busy with other conversations, try again in a moment.")


class PlatformError(PersonabotError):
    user_message = N_("The chat platform did not accept my message.")


class PluginError(PersonabotError):
    """A plugin failed; the bot and the other plugins go on."""

    user_message = N_("Sorry, that part of the bot had a problem. Everything else still works; please try later.")
