"""The RateLimiter port: at most `limit` acquisitions of a key in any `per_seconds` window.

Used for the per-publisher request rate (over it: 429 with Retry-After, nothing stored) and
per user and type (over it: the notification is stored, its email and push are throttled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Verdict:
    """`allowed`: this acquisition counts and may go ahead. `remaining`: how many more the
    window holds now. `retry_after`: seconds until the next one would be allowed (0 when
    `remaining` > 0). `degraded`: the limiter could not count (its shared state did not
    answer in time) and let the acquisition through unchecked: fail open."""

    allowed: bool
    remaining: int
    retry_after: float
    degraded: bool = False


class RateLimiter(Protocol):
    """Counts acquisitions per key in a sliding window.

    Guarantees every implementation gives:

    - In any window of `per_seconds`, at most `limit` acquisitions of one key are allowed,
      however many callers race (on one node or many sharing the implementation's state): a
      check and its count are one atomic step.
    - A refused acquisition does not count.
    - Keys are independent; a key's state expires once its window has passed, so nothing is
      kept for a key that is no longer used.
    - Time is the implementation's clock (injected in process; the server's own where the state
      is shared), so callers cannot disagree about windows.
    - An answer comes within the implementation's bound: where the state is remote and does
      not answer, the acquisition is allowed with `degraded=True` (fail open), never an error
      and never a wait longer than the bound.
    """

    async def acquire(self, key: str, limit: int, per_seconds: float) -> Verdict:
        """Count one acquisition of `key` if the window has room."""
        ...

    async def acquire_many(self, keys: Sequence[str], limit: int, per_seconds: float
                           ) -> list[Verdict]:
        """`acquire` for each key in turn, as one step (one round trip where the state is
        remote): one verdict per key, in order. A key named twice is acquired twice."""
        ...

    async def close(self) -> None:
        """Release connections; the limiter is not used afterwards."""
        ...
