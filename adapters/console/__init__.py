"""The local console: a terminal chat through the same Dispatcher as every platform."""

from adapters.console.adapter import ConsoleOutbox, console_event, serve

__all__ = ["ConsoleOutbox", "console_event", "serve"]
