"""Reading reminder times in English and Chinese (plugins/timeparse.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.timeparse import TimeParseError, chinese_number, parse_clock, parse_reminder

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=SHANGHAI)  # a Monday morning


@pytest.mark.parametrize(
    ("text", "when", "what"),
    [
        ("remind me in 20 minutes to stretch", NOW + timedelta(minutes=20), "stretch"),
        ("Remind me in 1h30m: push the release", NOW + timedelta(minutes=90), "push the release"),
        ("remind me in an hour and 15 minutes to eat", NOW + timedelta(minutes=75), "eat"),
        ("remind me in half an hour to call back", NOW + timedelta(minutes=30), "call back"),
        ("@teambot remind me in 2 days to renew the domain", NOW + timedelta(days=2), "renew the domain"),
        ("remind me to call Bob at 17:30", NOW.replace(hour=17, minute=30), "call Bob"),
        ("remind me at 9am to water plants", NOW.replace(hour=9) + timedelta(days=1), "water plants"),
        ("remind me tomorrow at 5:15 pm to leave", NOW.replace(hour=17, minute=15) + timedelta(days=1), "leave"),
        ("please remind me tonight to call mum", NOW.replace(hour=20), "call mum"),
        ("remind me on 2025-06-01 14:00 to renew", datetime(2025, 6, 1, 14, 0, tzinfo=SHANGHAI), "renew"),
        ("20分钟后提醒我喝水", NOW + timedelta(minutes=20), "喝水"),
        ("提醒我两个小时后开会", NOW + timedelta(hours=2), "开会"),
        ("半小时后提醒我休息一下", NOW + timedelta(minutes=30), "休息一下"),
        ("提醒我明天上午9点交报告", NOW.replace(hour=9) + timedelta(days=1), "交报告"),
        ("下午五点半提醒我下班", NOW.replace(hour=17, minute=30), "下班"),
        ("提醒我明天多喝一点水", NOW.replace(hour=9) + timedelta(days=1), "多喝一点水"),  # "一点" is "a little"
    ],
)
def test_requests_are_read(text, when, what):
    request = parse_reminder(text, NOW)
    assert (request.when, request.text) == (when, what)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("remind me about the meeting", "I couldn't tell when"),
        ("remind me in a meeting", "I couldn't tell when"),
        ("remind me in 10 minutes", "What should I remind you about?"),
        ("remind me on 2024-01-01 to pay", "has already passed"),
        ("remind me on 2025-02-30 to pay", "is not a date"),
        ("remind me at 24:10 to x", "is not a time of day"),
        ("remind me at 13pm to x", "is not a time of day"),
        ("提醒我明天25点开会", "is not a time of day"),
    ],
)
def test_unreadable_or_past_times_say_what_to_fix(text, message):
    with pytest.raises(TimeParseError, match=message):
        parse_reminder(text, NOW)


def test_clock_and_number_helpers():
    assert parse_clock("8:05pm").strftime("%H:%M") == "20:05"
    assert parse_clock("12am").strftime("%H:%M") == "00:00"
    assert [chinese_number(n) for n in ("十", "十五", "二十", "两", "一百零五", "42")] == [10, 15, 20, 2, 105, 42]
    with pytest.raises(TimeParseError):
        parse_clock("noonish")


@given(st.text(max_size=80))
def test_any_text_is_read_or_refused_with_a_message(text):
    try:
        request = parse_reminder("remind me " + text, NOW)
    except TimeParseError as error:
        assert str(error)
    else:
        assert request.when > NOW and request.text
