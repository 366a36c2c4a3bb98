"""Telegram adapter: python-telegram-bot updates in, Bot API calls out (docs/telegram.md)."""

from adapters.telegram.adapter import TelegramAdapter, read_secrets, serve
from adapters.telegram.convert import BotIdentity, Ignored, update_to_event
from adapters.telegram.outbox import TelegramOutbox

__all__ = ["BotIdentity", "Ignored", "TelegramAdapter", "TelegramOutbox", "read_secrets", "serve", "update_to_event"]
