"""Quiet hours: inside or outside a window and until when, across midnight, on chosen days,
and on the nights the clocks change in Europe/Paris and America/New_York."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tocsin.domain.quiet_hours import QuietHours, QuietHoursError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


NIGHT_PARIS = QuietHours.parse("22:00", "07:00", "Europe/Paris")


@pytest.mark.parametrize(("now", "until"), [
    # 2030-06-12 is summer in Paris (UTC+2): 22:00 local is 20:00 UTC, 07:00 is 05:00 UTC.
    (utc(2030, 6, 12, 19, 59), None),
    (utc(2030, 6, 12, 20, 0), utc(2030, 6, 13, 5, 0)),  # starts: inclusive
    (utc(2030, 6, 12, 23, 30), utc(2030, 6, 13, 5, 0)),  # past midnight UTC… 01:30 local
    (utc(2030, 6, 13, 4, 59), utc(2030, 6, 13, 5, 0)),  # the window began yesterday
    (utc(2030, 6, 13, 5, 0), None),  # ends: exclusive
    (utc(2030, 6, 13, 12, 0), None),
    # Winter (UTC+1).
    (utc(2030, 1, 15, 21, 0), utc(2030, 1, 16, 6, 0)),
])
def test_a_window_across_midnight(now: datetime, until: datetime | None) -> None:
    assert NIGHT_PARIS.quiet_until(now) == until


def test_a_window_within_one_day() -> None:
    lunch = QuietHours.parse("12:00", "13:30", "UTC")
    assert lunch.quiet_until(utc(2030, 6, 12, 11, 59)) is None
    assert lunch.quiet_until(utc(2030, 6, 12, 12, 0)) == utc(2030, 6, 12, 13, 30)
    assert lunch.quiet_until(utc(2030, 6, 12, 13, 30)) is None


def test_days_are_the_days_a_window_starts() -> None:
    weeknights = QuietHours.parse("22:00", "07:00", "UTC", ["mon", "tue", "wed", "thu", "fri"])
    # Friday 2030-06-14 22:00 starts a window that runs into Saturday morning…
    assert weeknights.quiet_until(utc(2030, 6, 15, 3, 0)) == utc(2030, 6, 15, 7, 0)
    # …but Saturday night starts none, and neither does Sunday night.
    assert weeknights.quiet_until(utc(2030, 6, 15, 23, 0)) is None
    assert weeknights.quiet_until(utc(2030, 6, 16, 3, 0)) is None
    assert weeknights.quiet_until(utc(2030, 6, 16, 23, 0)) is None
    assert weeknights.quiet_until(utc(2030, 6, 17, 23, 0)) == utc(2030, 6, 18, 7, 0)  # Monday
    assert weeknights.to_json()["days"] == ["mon", "tue", "wed", "thu", "fri"]


@pytest.mark.parametrize(("zone", "evening", "now", "until", "hours"), [
    # Paris, clocks forward on 2030-03-31 at 02:00 (UTC+1 → UTC+2): an eight-hour night.
    ("Europe/Paris", utc(2030, 3, 30, 21, 0), utc(2030, 3, 31, 1, 30), utc(2030, 3, 31, 5, 0),
     8),
    # Paris, clocks back on 2030-10-27 at 03:00 (UTC+2 → UTC+1): a ten-hour night.
    ("Europe/Paris", utc(2030, 10, 26, 20, 0), utc(2030, 10, 27, 1, 30),
     utc(2030, 10, 27, 6, 0), 10),
    # New York, clocks forward on 2030-03-10 at 02:00 (UTC-5 → UTC-4).
    ("America/New_York", utc(2030, 3, 10, 3, 0), utc(2030, 3, 10, 7, 30),
     utc(2030, 3, 10, 11, 0), 8),
    # New York, clocks back on 2030-11-03 at 02:00 (UTC-4 → UTC-5).
    ("America/New_York", utc(2030, 11, 3, 2, 0), utc(2030, 11, 3, 6, 30),
     utc(2030, 11, 3, 12, 0), 10),
])
def test_the_nights_the_clocks_change(zone: str, evening: datetime, now: datetime,
                                      until: datetime, hours: int) -> None:
    night = QuietHours.parse("22:00", "07:00", zone)
    assert night.quiet_until(evening) == until  # 22:00 local, the evening before
    assert night.quiet_until(now) == until  # in the small hours, across the change
    assert (until - evening).total_seconds() == hours * 3600
    assert night.quiet_until(until) is None


def test_a_time_the_clocks_skip_is_read_before_the_change() -> None:
    # 02:30 does not exist in Paris on 2030-03-31: read at UTC+1, it is 01:30 UTC (03:30 CEST).
    early = QuietHours.parse("02:30", "06:00", "Europe/Paris")
    assert early.quiet_until(utc(2030, 3, 31, 1, 29)) is None
    assert early.quiet_until(utc(2030, 3, 31, 1, 30)) == utc(2030, 3, 31, 4, 0)


@pytest.mark.parametrize(("args", "says"), [
    (("7:00", "08:00", "UTC"), "start: expected a time as HH:MM"),
    (("07:00", "24:00", "UTC"), "end: expected a time as HH:MM"),
    (("07:00", "07:00", "UTC"), "the same time"),
    (("22:00", "07:00", "Mars/Olympus_Mons"), "unknown IANA time zone"),
    (("22:00", "07:00", "../../etc/passwd"), "unknown IANA time zone"),
    (("22:00", "07:00", "UTC", ["mon", "funday"]), "unknown day(s) funday"),
    (("22:00", "07:00", "UTC", []), "at least one day"),
])
def test_what_is_refused_says_why(args: tuple[object, ...], says: str) -> None:
    with pytest.raises(QuietHoursError) as refused:
        QuietHours.parse(*args)  # type: ignore[arg-type]
    assert says in str(refused.value)
