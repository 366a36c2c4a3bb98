"""Keep the bot token out of every log line.

Telegram puts the token in each request URL, and libraries log URLs (httpx at INFO,
PTB at DEBUG, exception texts). A log-record factory sees every record of every
logger before any handler, so it is the one place that can redact them all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from urllib.parse import quote

REDACTED = "[redacted]"


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _scrub(record: logging.LogRecord, secrets: tuple[str, ...]) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call; the handler reports it, with the raw args
        message = str(record.msg)
    if any(secret in message for secret in secrets):
        record.msg, record.args = _redact(message, secrets), None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        if any(secret in text for secret in secrets):
            record.exc_text, record.exc_info = _redact(text, secrets), None
    return record


@contextlib.contextmanager
def secrets_redacted(*values: str | None) -> Iterator[None]:
    """While active, every log record has ``values`` (and their URL forms) replaced."""
    forms = {form for value in values if value for form in (value, quote(value, safe=""))}
    secrets = tuple(sorted(forms, key=len, reverse=True))
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        return _scrub(previous(*args, **kwargs), secrets)

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)
