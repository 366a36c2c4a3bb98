"""Explicit preferences and consent flags, and what they put into the prompt.

Trust rule (core/prompt.py): the system prompt holds operator text only. Language,
reply length and tone are chosen from the tables below, so the system text built
from them is ours, word for word. A name is free text the user typed, so it goes in
the user-turn context ("Please call me …"), and the system prompt only says that the
user chose one.
"""

from __future__ import annotations

import unicodedata

from core.errors import CommandUsageError
from core.i18n import N_, _
from core.prompt import PromptSection
from core.records import Profile

FIELDS = ("name", "language", "length", "tone")
MAX_NAME_CHARS = 32

LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    # code: (how the prompt names it, other accepted spellings)
    "en": ("English", ("english",)),
    "zh": ("Chinese (中文)", ("chinese", "中文", "汉语", "普通话", "mandarin", "zh-cn", "zh-hans")),
    "zh-tw": ("Traditional Chinese (繁體中文)", ("繁體中文", "繁体中文", "zh-hant", "traditional chinese")),
    "es": ("Spanish (español)", ("spanish", "español", "espanol")),
    "fr": ("French (français)", ("french", "français", "francais")),
    "de": ("German (Deutsch)", ("german", "deutsch")),
    "it": ("Italian (italiano)", ("italian", "italiano")),
    "pt": ("Portuguese (português)", ("portuguese", "português", "portugues")),
    "ru": ("Russian (русский)", ("russian", "русский")),
    "uk": ("Ukrainian (українська)", ("ukrainian", "українська")),
    "pl": ("Polish (polski)", ("polish", "polski")),
    "nl": ("Dutch (Nederlands)", ("dutch", "nederlands")),
    "tr": ("Turkish (Türkçe)", ("turkish", "türkçe", "turkce")),
    "ar": ("Arabic (العربية)", ("arabic", "العربية")),
    "hi": ("Hindi (हिन्दी)", ("hindi", "हिन्दी")),
    "ja": ("Japanese (日本語)", ("japanese", "日本語")),
    "ko": ("Korean (한국어)", ("korean", "한국어")),
    "vi": ("Vietnamese (Tiếng Việt)", ("vietnamese", "tiếng việt")),
    "id": ("Indonesian (Bahasa Indonesia)", ("indonesian", "bahasa indonesia")),
    "th": ("Thai (ไทย)", ("thai", "ไทย")),
}
LENGTHS = {
    "short": "Keep your replies short: one or two sentences.",
    "medium": "Keep your replies to one short paragraph.",
    "long": "Give detailed, thorough replies when the topic allows it.",
}
TONES = {
    "casual": "Use a casual, relaxed tone.",
    "friendly": "Use a warm, friendly tone.",
    "formal": "Use a formal, polite tone.",
    "professional": "Use a clear, professional tone.",
    "playful": "Use a playful, light-hearted tone.",
    "encouraging": "Use an encouraging, supportive tone.",
    "direct": "Be direct and to the point.",
}

# Consent flags: name -> default (``memory`` takes the bot's personalization.memory_default).
CONSENT_FLAGS = {"memory": True, "memories_in_groups": False, "training": False}
PRIVACY_SETTINGS = {"memory": "memory", "groups": "memories_in_groups", "training": "training"}


def normalize_language(value: str) -> str:
    wanted = unicodedata.normalize("NFKC", value).strip().casefold()
    for code, (_name, aliases) in LANGUAGES.items():
        if wanted == code or wanted in aliases:
            return code
    codes = ", ".join(LANGUAGES)
    raise CommandUsageError(f"unknown language {value!r}", user_message=_("Unknown language. Choose one of: {codes}", codes=codes))


def validate_name(value: str) -> str:
    """Letters (any script), spaces, apostrophes, hyphens and dots; 1 to 32 characters."""
    name = " ".join(unicodedata.normalize("NFC", value).split())
    ok = 0 < len(name) <= MAX_NAME_CHARS and any(ch.isalpha() for ch in name)
    ok = ok and all(ch.isalpha() or ch in " '-.·’" or unicodedata.category(ch) in ("Mn", "Mc") for ch in name)
    if not ok:
        raise CommandUsageError(
            f"bad name {value!r}",
            user_message=_("A name is 1 to {most} letters (spaces, ' - . allowed).", most=MAX_NAME_CHARS),
        )
    return name


def validate_preference(field: str, value: str) -> str:
    """The stored form of a preference, or CommandUsageError with the allowed values."""
    if field == "name":
        return validate_name(value)
    if field == "language":
        return normalize_language(value)
    table = {"length": LENGTHS, "tone": TONES}.get(field)
    if table is None:
        raise CommandUsageError(f"unknown field {field!r}", user_message=_("Fields: {fields}", fields=", ".join(FIELDS)))
    choice = value.strip().casefold()
    if choice not in table:
        raise CommandUsageError(f"bad {field} {value!r}", user_message=_("{name} must be one of: {choices}", name=field, choices=", ".join(table)))
    return choice


def describe_preference(field: str, value: str | None) -> str:
    if not value:
        return N_("not set")
    if field == "language":
        return LANGUAGES.get(value, (value, ()))[0]
    return value


def consent_of(profile: Profile, flag: str, memory_default: bool = True) -> bool:
    default = memory_default if flag == "memory" else CONSENT_FLAGS[flag]
    return bool(profile.consent.get(flag, default))


def preference_sections(preferences: dict[str, str]) -> list[PromptSection]:
    """Trusted instructions from validated choices; the name as an untrusted note."""
    lines = []
    language = preferences.get("language")
    if language in LANGUAGES:
        lines.append(f"Reply in {LANGUAGES[language][0]}, whatever language the user writes in.")  # i18n: as is (the model reads it)
    if preferences.get("length") in LENGTHS:
        lines.append(LENGTHS[preferences["length"]])
    if preferences.get("tone") in TONES:
        lines.append(TONES[preferences["tone"]])
    name = preferences.get("name")
    if name:
        lines.append("The user told you the name they want to be called by; use it.")  # i18n: as is (the model reads it)
    sections = [PromptSection("User preferences:\n" + "\n".join(lines), trusted=True)] if lines else []
    if name:
        sections.append(PromptSection(f"Please call me {name}.", priority=1000))
    return sections


def merge_linked(profiles: list[Profile], memory_default: bool) -> tuple[dict[str, str], dict[str, bool]]:
    """Preferences and consent for identities being linked: earlier profiles win on
    preferences; a consent flag stays on only if every identity had it on."""
    preferences: dict[str, str] = {}
    for profile in reversed(profiles):
        preferences.update(profile.preferences)
    consent = {
        flag: all(consent_of(profile, flag, memory_default) for profile in profiles) for flag in CONSENT_FLAGS
    }
    return preferences, consent
