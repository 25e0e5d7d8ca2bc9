"""How the deliverer reads a receiver's Retry-After (seconds or an HTTP-date) and what it logs about it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from functions.notify.delivering import MAX_BACKOFF_SECONDS, backoff_seconds, retry_after_seconds, retry_delay
from functions.notify.netguard import Answer

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def answer(status: int, retry_after: str | None) -> Answer:
    return Answer(status, "", 3, error=f"answered {status}", retry_after=retry_after)


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), ("0", 0.0),
    (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),  # IMF-fixdate
    ("Monday, 07-Dec-26 12:02:00 GMT", 120.0), ("Mon Dec  7 12:01:00 2026", 60.0),  # the obsolete forms too
    (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # a date already past: now
    ("soon", None), ("", None), ("-5", None), ("1.5", None), ("١٢", None),  # not 1*DIGIT (ASCII)
])
def test_retry_after_is_seconds_or_an_http_date(value, seconds):
    assert retry_after_seconds(value, NOW) == seconds


def test_retry_after_waits_at_least_as_asked_within_the_maximum():
    base = 10.0
    assert retry_delay(base, 1, answer(503, "120"), NOW) == (120.0, "next attempt in 120 s, as Retry-After asked")
    date = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    assert retry_delay(base, 2, answer(429, date), NOW)[0] == 300.0
    # shorter than the backoff already is: the backoff stands ("no sooner than" either)
    delay, note = retry_delay(base, 3, answer(503, "5"), NOW)
    assert delay == backoff_seconds(base, 3) == 40.0 and "within the backoff" in note


def test_huge_or_malformed_retry_after_falls_back_to_the_normal_backoff():
    base = 10.0
    normal = backoff_seconds(base, 2)
    delay, note = retry_delay(base, 2, answer(503, str(int(MAX_BACKOFF_SECONDS) + 1)), NOW)
    assert delay == normal and "over the 3600 s maximum" in note
    delay, note = retry_delay(base, 2, answer(429, "99999999999999999999999"), NOW)
    assert delay == normal and "maximum" in note
    delay, note = retry_delay(base, 2, answer(503, "tomorrow-ish"), NOW)
    assert delay == normal and "neither seconds nor an HTTP-date" in note


def test_retry_after_only_counts_on_429_and_503():
    assert retry_delay(10.0, 1, answer(500, "600"), NOW) == (10.0, None)
    assert retry_delay(10.0, 1, answer(503, None), NOW) == (10.0, None)
    assert retry_delay(10.0, 1, Answer(None, "", 0, error="ConnectTimeoutError"), NOW) == (10.0, None)
