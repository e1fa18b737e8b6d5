"""A rate limit as written in settings and types: how many in how long, bounded.

The limiters keep one entry per allowed acquisition in the window (an exact sliding log), so a
rate's count is bounded to keep a key's memory bounded; its window is bounded to 30 days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LIMIT = 100_000
MAX_PER_SECONDS = 30 * 24 * 3600

_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_WRITTEN = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` in any window of `per_seconds`. The window slides, and the whole
    `limit` may be used at once: `6000/min` allows a burst of 6000 within one second (then
    nothing until those leave the window), `100/s` at most 100 in any one second."""

    limit: int
    per_seconds: float

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"the count must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if not 0 < self.per_seconds <= MAX_PER_SECONDS:
            raise ValueError(f"the window must be more than 0 and at most {MAX_PER_SECONDS} "
                             f"seconds (30 days), got {self.per_seconds:g}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`100/s`, `6000/min`, `20000/h` (or `/second`, `/minute`, `/hour`)."""
        found = _WRITTEN.match(text.lower())
        if found is None or found.group(2) not in _UNITS:
            raise ValueError(f"expected <count>/s, <count>/min or <count>/h (e.g. 100/s), "
                             f"got {text!r}")
        return cls(int(found.group(1)), _UNITS[found.group(2)])

    def to_json(self) -> dict[str, int | float]:
        seconds = self.per_seconds
        return {"limit": self.limit,
                "per_seconds": int(seconds) if float(seconds).is_integer() else seconds}

    def __str__(self) -> str:
        for unit, seconds in (("h", 3600), ("min", 60), ("s", 1)):
            if self.per_seconds == seconds:
                return f"{self.limit}/{unit}"
        return f"{self.limit} per {self.per_seconds:g}s"
