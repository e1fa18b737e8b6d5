"""Quiet hours: a daily window in the user's time zone during which email and push wait.

A window is `start` to `end` in local time, on the days it starts (every day unless `days`
says otherwise); `end` earlier than `start` means the window runs past midnight into the next
day (22:00 to 07:00). Windows follow the zone's clock changes: the night the clocks go forward
a 22:00-07:00 window lasts eight hours, the night they go back ten. A local time that does
not exist (inside the hour the clocks skip) is read in the offset before the change, so 02:30
on the night Paris skips from 02:00 to 03:00 is 03:30 summer time; a local time that happens
twice (the hour repeated when the clocks go back) is its first occurrence.

No I/O: given the time now, it says whether it is quiet and until when.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class QuietHoursError(ValueError):
    """A window that cannot be: the message says which part and why."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    timezone: str
    days: frozenset[int] = field(default_factory=lambda: frozenset(range(7)))  # Monday is 0

    @classmethod
    def parse(cls, start: str, end: str, timezone: str, days: list[str] | None = None
              ) -> QuietHours:
        """From the API's shape: `"22:00"`, `"07:00"`, an IANA zone, day names."""
        begin, finish = _clock_time(start, "start"), _clock_time(end, "end")
        if begin == finish:
            raise QuietHoursError("start and end are the same time: the window would be empty "
                                  "(or the whole day); give two different times")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise QuietHoursError(f"timezone: unknown IANA time zone {timezone!r}") from None
        if days is None:
            chosen = frozenset(range(7))
        else:
            unknown = sorted(set(days) - set(DAYS))
            if unknown:
                raise QuietHoursError(f"days: unknown day(s) {', '.join(unknown)}; expected "
                                      f"{', '.join(DAYS)}")
            if not days:
                raise QuietHoursError("days: give at least one day, or leave days out")
            chosen = frozenset(DAYS.index(day) for day in days)
        return cls(start=begin, end=finish, timezone=timezone, days=chosen)

    def to_json(self) -> dict[str, object]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M"),
                "timezone": self.timezone, "days": [DAYS[d] for d in sorted(self.days)]}

    def quiet_until(self, now: datetime) -> datetime | None:
        """If `now` is inside a window, when that window ends (UTC); None otherwise."""
        zone = ZoneInfo(self.timezone)
        today = now.astimezone(zone).date()
        # A window that crosses midnight may have started yesterday.
        for day in (today - timedelta(days=1), today):
            if day.weekday() not in self.days:
                continue
            opens, closes = self._window(day, zone)
            if opens <= now < closes:
                return closes
        return None

    def _window(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        closing_day = day if self.end > self.start else day + timedelta(days=1)
        return _instant(day, self.start, zone), _instant(closing_day, self.end, zone)


def _clock_time(value: str, name: str) -> time:
    match = _HHMM.match(value)
    if match is None:
        raise QuietHoursError(f"{name}: expected a time as HH:MM (24-hour), got {value!r}")
    return time(int(match[1]), int(match[2]))


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (fold 0: see the module's docstring)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
