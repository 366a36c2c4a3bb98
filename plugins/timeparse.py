"""When did the user mean? Reminder requests in English and Chinese.

    "remind me in 20 minutes to stretch"        "20分钟后提醒我喝水"
    "remind me to call Bob at 17:30"            "提醒我明天上午9点开会"
    "remind me tomorrow at 9am to send notes"   "半小时后提醒我休息"
    "remind me on 2025-06-01 14:00 to renew"    "下午5点提醒我下班"

A clock time without a date means its next occurrence. Anything else is a
:class:`TimeParseError` whose message is a short answer for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from core.plugins import N_, _

EXAMPLES = N_("Try: “remind me in 20 minutes to stretch”, “remind me at 17:30 to call Bob” or “20分钟后提醒我喝水”.")


class TimeParseError(ValueError):
    """The message says what to fix; ``message`` is shown to the user (in their language)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ReminderRequest:
    when: datetime  # timezone-aware
    text: str


_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "秒": 1, "秒钟": 1, "分": 60, "分钟": 60, "小时": 3600, "个小时": 3600, "钟头": 3600, "个钟头": 3600,
    "天": 86400, "周": 604800, "星期": 604800, "个星期": 604800,
}  # fmt: skip

_EN_WORD_UNIT = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?)"
# "5m", "5 minutes", "an hour", "half an hour"; letters-only units need a number ("and" is not "an d").
_EN_AMOUNT = rf"(?:\d+(?:\.\d+)?\s*(?:{_EN_WORD_UNIT}|[smhdw])|(?:half\s+an?|an?)\s+{_EN_WORD_UNIT})(?![^\W\d_])"
_EN_RELATIVE = re.compile(rf"\bin\s+(?P<span>{_EN_AMOUNT}(?:\s*(?:,|and)?\s*{_EN_AMOUNT})*)", re.I)
_EN_PART = re.compile(
    rf"(?:(?<![\d.])(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>{_EN_WORD_UNIT}|[smhdw])"
    rf"|(?<![^\W\d_])(?P<word>half\s+an?|an?)\s+(?P<word_unit>{_EN_WORD_UNIT}))(?![^\W\d_])",
    re.I,
)
_EN_CLOCK = r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)?"
_EN_DATE = re.compile(rf"\bon\s+(?P<date>\d{{4}}-\d{{2}}-\d{{2}})(?:\s+(?:at\s+)?{_EN_CLOCK})?", re.I)
_EN_DAY = re.compile(rf"\b(?P<day>today|tonight|tomorrow)\b(?:\s+at\s+{_EN_CLOCK})?", re.I)
_EN_AT = re.compile(rf"\bat\s+{_EN_CLOCK}(?![\w%/:])", re.I)
_EN_LEAD = re.compile(r"^\s*(?:@\S+[\s,]+)?(?:please\s+|can you\s+|could you\s+)?(?:remind\s+me|/remind)\b[\s,:]*", re.I)
_EN_FILLER = re.compile(r"^(?:to|that|about|of)\s+|\s+(?:please)$", re.I)

_CN_NUMBER = r"(?:\d+|[零一二两三四五六七八九十百]+)"
_CN_RELATIVE = re.compile(
    rf"(?P<span>(?:{_CN_NUMBER}|半)\s*(?:个)?(?:秒钟|秒|分钟|分|个小时|小时|个钟头|钟头|天|个星期|星期|周)(?:半)?)\s*(?:之后|以后|后)"
)
_CN_CLOCK = re.compile(
    rf"(?P<day>今天|明天|后天)?\s*(?P<period>凌晨|早上|上午|中午|下午|晚上)?\s*(?P<hour>{_CN_NUMBER})\s*[点點時时](?:\s*(?P<minute>{_CN_NUMBER})\s*分?|(?P<half>半))?"
)
_CN_DAY_ONLY = re.compile(r"(?P<day>今天|明天|后天)")
_CN_LEAD = re.compile(r"(?:请|麻烦)?\s*(?:提醒我|叫我)\s*")
_TRIM = " \t\n,，.。:：;；!！、"


def chinese_number(text: str) -> int:
    """``"20"``, ``"二十"``, ``"两"``, ``"一百零五"`` → int. Raises TimeParseError."""
    if text.isdigit():
        return int(text)
    digits = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
    total, current = 0, 0
    for char in text:
        if char in digits:
            current = digits[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
        else:
            raise TimeParseError(_("I couldn't read the number '{text}'. {examples}", text=text, examples=_(EXAMPLES)))
    return total + current


def parse_clock(text: str) -> time:
    """``"08:30"``, ``"8:30pm"``, ``"9am"``, ``"21"`` → a time of day. Raises TimeParseError."""
    found = re.fullmatch(_EN_CLOCK, text.strip(), re.I)
    if not found:
        raise TimeParseError(_("I couldn't read the time '{text}'; use HH:MM, e.g. 08:30 or 9pm.", text=text))
    return _clock(found.group("hour"), found.group("minute"), found.group("ampm"))


def _clock(hour_text: str, minute_text: str | None, ampm: str | None) -> time:
    hour, minute = int(hour_text), int(minute_text or 0)
    if ampm:
        if not 1 <= hour <= 12:
            raise TimeParseError(_("{time} is not a time of day.", time=f"{hour}{ampm}"))
        hour = hour % 12 + (12 if ampm.lower().startswith("p") else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise TimeParseError(_("{time} is not a time of day.", time=f"{hour_text}:{minute_text or '00'}"))
    return time(hour, minute)


def next_time_of_day(now: datetime, at: time, day: date | None = None) -> datetime:
    """``at`` on ``day`` (default: today, or tomorrow when it has passed), in ``now``'s timezone."""
    zone = now.tzinfo
    if day is not None:
        return datetime.combine(day, at, tzinfo=zone)
    candidate = datetime.combine(now.date(), at, tzinfo=zone)
    if candidate <= now:
        candidate = datetime.combine(now.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate


def _seconds(span: str) -> float:
    total = 0.0
    for part in _EN_PART.finditer(span):
        if part.group("number"):
            total += float(part.group("number")) * _UNITS[part.group("unit").lower()]
        else:
            value = 0.5 if part.group("word").lower().startswith("half") else 1.0
            total += value * _UNITS[part.group("word_unit").lower()]
    return total


def _cn_seconds(span: str) -> float:
    found = re.fullmatch(rf"(?P<n>{_CN_NUMBER}|半)\s*(?P<unit>个?(?:秒钟|秒|分钟|分|小时|钟头|天|星期|周))(?P<half>半)?", span)
    if not found:
        raise TimeParseError(_("I couldn't read '{text}'. {examples}", text=span, examples=_(EXAMPLES)))
    value = 0.5 if found.group("n") == "半" else float(chinese_number(found.group("n")))
    if found.group("half"):
        value += 0.5
    return value * _UNITS[found.group("unit")]


def _cn_hour(period: str | None, hour: int) -> int:
    if period in ("下午", "晚上") and hour < 12:
        return hour + 12
    if period == "中午" and hour < 11:
        return hour + 12
    return hour


def _remove(text: str, found: re.Match[str]) -> str:
    return (text[: found.start()] + " " + text[found.end() :]).strip()


def _day_offset(word: str) -> int:
    return {"today": 0, "tonight": 0, "tomorrow": 1, "今天": 0, "明天": 1, "后天": 2}[word.lower()]


def parse_reminder(message: str, now: datetime) -> ReminderRequest:
    """Read a reminder request relative to ``now`` (aware, in the user's timezone)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = _EN_LEAD.sub("", message.strip(), count=1)
    text = _CN_LEAD.sub(" ", text, count=1).strip()
    when: datetime | None = None
    for parse in (_english, _chinese):
        result = parse(text, now)
        if result is not None:
            when, text = result
            break
    if when is None:
        raise TimeParseError(_("I couldn't tell when to remind you. {examples}", examples=_(EXAMPLES)))
    what = _EN_FILLER.sub("", text.strip(_TRIM)).strip(_TRIM)
    if not what:
        raise TimeParseError(_("What should I remind you about? Add it after the time, e.g. “… to stretch”."))
    if when <= now:
        raise TimeParseError(_("That time ({when}) has already passed. {examples}", when=f"{when:%Y-%m-%d %H:%M}", examples=_(EXAMPLES)))
    return ReminderRequest(when, what)


def _english(text: str, now: datetime) -> tuple[datetime, str] | None:
    if found := _EN_RELATIVE.search(text):
        seconds = _seconds(found.group("span"))
        if seconds <= 0:
            raise TimeParseError(_("“in {span}” is not in the future. {examples}", span=found.group("span"), examples=_(EXAMPLES)))
        return now + timedelta(seconds=seconds), _remove(text, found)
    if found := _EN_DATE.search(text):
        try:
            day = date.fromisoformat(found.group("date"))
        except ValueError:
            raise TimeParseError(_("{date} is not a date.", date=found.group("date"))) from None
        at = _clock(found.group("hour"), found.group("minute"), found.group("ampm")) if found.group("hour") else time(9)
        return next_time_of_day(now, at, day), _remove(text, found)
    if found := _EN_DAY.search(text):
        day = now.date() + timedelta(days=_day_offset(found.group("day")))
        default = time(20) if found.group("day").lower() == "tonight" else time(9)
        at = _clock(found.group("hour"), found.group("minute"), found.group("ampm")) if found.group("hour") else default
        rest = _remove(text, found)
        if not found.group("hour") and (clock := _EN_AT.search(rest)):
            at = _clock(clock.group("hour"), clock.group("minute"), clock.group("ampm"))
            rest = _remove(rest, clock)
        return next_time_of_day(now, at, day), rest
    if found := _EN_AT.search(text):
        at = _clock(found.group("hour"), found.group("minute"), found.group("ampm"))
        return next_time_of_day(now, at), _remove(text, found)
    return None


def _chinese(text: str, now: datetime) -> tuple[datetime, str] | None:
    if found := _CN_RELATIVE.search(text):
        return now + timedelta(seconds=_cn_seconds(found.group("span").replace(" ", ""))), _remove(text, found)
    # "一点" is also "a little": a clock in Chinese numerals needs a day or a part of the day.
    clocks = (m for m in _CN_CLOCK.finditer(text) if m.group("hour").isdigit() or m.group("day") or m.group("period"))
    if found := next(clocks, None):
        hour = _cn_hour(found.group("period"), chinese_number(found.group("hour")))
        minute = 30 if found.group("half") else chinese_number(found.group("minute")) if found.group("minute") else 0
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            raise TimeParseError(_("{time} is not a time of day.", time=found.group(0)))
        rest = _remove(text, found)
        day_word = found.group("day")
        if not day_word and (day_found := _CN_DAY_ONLY.search(rest)):
            day_word, rest = day_found.group("day"), _remove(rest, day_found)
        day = now.date() + timedelta(days=_day_offset(day_word)) if day_word else None
        return next_time_of_day(now, time(hour, minute), day), rest
    if found := _CN_DAY_ONLY.search(text):
        day = now.date() + timedelta(days=_day_offset(found.group("day")))
        return next_time_of_day(now, time(9), day), _remove(text, found)
    return None


def known_zone(name: str) -> str:
    """``name`` if it is a known time zone (for config validators; TimeParseError is a ValueError)."""
    zone(name)
    return name


def zone(name: str) -> tzinfo:
    """An IANA time zone by name; TimeParseError with a short hint otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeParseError(_("Unknown time zone '{name}'; use a name like Europe/Paris or Asia/Shanghai.", name=name)) from None
