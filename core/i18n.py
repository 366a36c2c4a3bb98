"""The bot's own words in several languages: gettext catalogs read with Babel.

The catalogs are the ``.po`` files in ``core/locales/<locale>/LC_MESSAGES/personabot.po``
(shipped as package data). They are compiled in memory at first use (Babel's pofile and
mofile, then the standard library's GNUTranslations for plurals), so there is no build step.
A msgid is the English text, with ``{name}`` placeholders (python-brace-format).

Three ways code says something to a user (docs/i18n.md)::

    ctx.t("Started a new conversation.")            # rendered now, in the reader's language
    raise NotFound(..., user_message=_("You have no memory #{id}.", id=7))
    CommandSpec("reset", N_("Start a new conversation"), ...)   # marked; rendered where shown

``_`` returns a :class:`Msg`: a ``str`` holding the English text (logs and old callers read
it as before) that :func:`t` renders again in any locale. The language of one event is
chosen by :func:`choose_locale`: the user's ``/profile set language``, else the platform's
hint, else the bot's ``language``; a language the catalogs lack falls to the next one.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "personabot"
SOURCE_LOCALE = "en"


class Msg(str):
    """A message in English now and in any catalog's language later (kwargs kept)."""

    msgid: str
    plural: str | None
    n: int | None
    kwargs: dict[str, Any]

    def __new__(cls, msgid: str, kwargs: Mapping[str, Any], plural: str | None = None, n: int | None = None) -> "Msg":
        text = _format(msgid if plural is None or n == 1 else plural, kwargs, SOURCE_LOCALE)
        made = super().__new__(cls, text)
        made.msgid, made.plural, made.n, made.kwargs = msgid, plural, n, dict(kwargs)
        return made


def _(msgid: str, **kwargs: Any) -> Msg:
    """Mark and format ``msgid``; it is rendered in the reader's language when sent."""
    return Msg(msgid, kwargs)


def _n(singular: str, plural: str, n: int, **kwargs: Any) -> Msg:
    """A plural message; ``n`` is also passed to the placeholders."""
    return Msg(singular, {"n": n, **kwargs}, plural, n)


def N_(msgid: str) -> str:
    """Mark ``msgid`` for the catalogs without rendering it (descriptions, class defaults)."""
    return msgid


@cache
def available_locales() -> tuple[str, ...]:
    """The locales with a catalog, e.g. ``("en", "zh_Hans")``."""
    return tuple(sorted(path.parent.parent.name for path in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")))


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalog of ``locale``; NullTranslations (English msgids) when there is none."""
    path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def normalize_locale(tag: str | None) -> str | None:
    """A platform's or a user's language tag as one of our locales, or None.

    ``zh-hans``, ``zh-CN``, ``zh`` and ``zh_Hans`` are Simplified Chinese; ``zh-TW`` and
    ``zh-hant`` are Traditional (no catalog yet, so None); ``en-US`` is ``en``.
    """
    if not tag:
        return None
    parts = tag.strip().replace("_", "-").lower().split("-")
    language = parts[0]
    if language == "zh":
        rest = set(parts[1:])
        locale = "zh_Hant" if rest & {"hant", "tw", "hk", "mo"} else "zh_Hans"
    else:
        locale = language
    return locale if locale in available_locales() else None


def choose_locale(candidates: Iterable[str | None]) -> str:
    """The first candidate the catalogs have (user's choice, platform hint, bot default), else English."""
    for candidate in candidates:
        locale = normalize_locale(candidate)
        if locale is not None:
            return locale
    return SOURCE_LOCALE


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"  # a translation naming a placeholder the caller did not give


def _format(text: str, kwargs: Mapping[str, Any], locale: str) -> str:
    if not kwargs:
        return text
    values = _Keep({key: t(locale, value) if isinstance(value, Msg) else value for key, value in kwargs.items()})
    return text.format_map(values)


def t(locale: str, message: str, **kwargs: Any) -> str:
    """``message`` (a msgid or a :class:`Msg`) in ``locale``; unknown text passes through as is."""
    catalog = translations(locale or SOURCE_LOCALE)
    if isinstance(message, Msg):
        merged = {**message.kwargs, **kwargs}
        if message.plural is not None and message.n is not None:
            return _format(catalog.ngettext(message.msgid, message.plural, message.n), merged, locale)
        return _format(catalog.gettext(message.msgid), merged, locale)
    return _format(catalog.gettext(message), kwargs, locale)


def nt(locale: str, singular: str, plural: str, n: int, **kwargs: Any) -> str:
    """The plural form for ``n`` in ``locale`` (``n`` is passed to the placeholders too)."""
    return _format(translations(locale or SOURCE_LOCALE).ngettext(singular, plural, n), {"n": n, **kwargs}, locale)
