"""Secret values never reach a log.

Bot files name the environment variables that hold tokens and keys (``token_env``,
``api_key_env``, ``webhook_secret_env``, any ``*_env`` key of a plugin section, and
``safety.secret_envs``). :class:`SecretRedactor` masks their values in every log record
at creation, before any handler sees it, so it also covers handlers added later and
third-party loggers (httpx logs request URLs, and Telegram's URLs contain the token).
"""

from __future__ import annotations

import logging
import os
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
import contextlib
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from core.settings import BotSettings

log = logging.getLogger(__name__)

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words; such a value is no secret


def _env_keys(data: Any) -> Iterator[str]:
    """Values of every ``*_env`` key in nested plugin/feature configuration."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
                yield value
            else:
                yield from _env_keys(value)
    elif isinstance(data, list):
        for item in data:
            yield from _env_keys(item)


def secret_env_names(settings: BotSettings, extra: Iterable[str] = ()) -> list[str]:
    """Names of the environment variables whose values are secrets for this bot."""
    names = [
        *(name for section in settings.platforms.values() for name in section.secret_envs()),
        settings.model.api_key_env,
        *_env_keys(settings.plugins),
        *_env_keys(settings.personalization),
        *extra,
    ]
    return sorted({name for name in names if name})


class SecretMask:
    """Replaces the secret values it holds with ``***`` in messages, tracebacks and stack info."""

    def __init__(self) -> None:
        self._held: Counter[str] = Counter()
        self._secrets: list[str] = []
        self._installed = False

    @contextmanager
    def masking(self, values: Iterable[str | None]) -> Iterator[None]:
        """Mask ``values`` (and their URL-quoted forms) in every record while the block runs."""
        forms = {form for value in values if value for form in (value, quote(value, safe=""))}
        short = [form for form in forms if len(form) < MIN_SECRET_CHARS]
        if short:
            log.warning("%d secret value(s) shorter than %d characters are not masked in logs", len(short), MIN_SECRET_CHARS)
        kept = [form for form in forms if len(form) >= MIN_SECRET_CHARS]
        self._held.update(kept)
        self._refresh()
        self._install()
        try:
            yield
        finally:
            self._held.subtract(kept)
            self._held = +self._held
            self._refresh()

    def _refresh(self) -> None:
        self._secrets = sorted(self._held, key=len, reverse=True)

    def _install(self) -> None:
        if self._installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            self.scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        self._installed = True

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def scrub(self, record: logging.LogRecord) -> None:
        if not self._secrets:
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it as usual
            return
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self.redact(formatted)  # formatters use exc_text when it is set
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)


PROCESS_MASK = SecretMask()


def masking(*values: str | None) -> "contextlib.AbstractContextManager[None]":
    """``with masking(token): ...`` — the process's one mask holds ``token`` meanwhile."""
    return PROCESS_MASK.masking(values)


def masking_env(names: Iterable[str]) -> "contextlib.AbstractContextManager[None]":
    return PROCESS_MASK.masking(os.environ.get(name, "") for name in names)
