"""The RateLimiter in process memory: for one process (the embedded default) and for tests.

A sliding log: the times of each key's allowed acquisitions in the current window, so the
limit is exact (never the up-to-twice overshoot of fixed or approximated windows)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from tocsin.clock import Clock, SystemClock
from tocsin.limits.base import Verdict


class MemoryRateLimiter:
    def __init__(self, clock: Clock | None = None, *, sweep_every: int = 10_000) -> None:
        self._clock = clock or SystemClock()
        self._logs: dict[str, tuple[float, deque[float]]] = {}
        self._sweep_every = sweep_every
        self._calls = 0

    async def acquire(self, key: str, limit: int, per_seconds: float) -> Verdict:
        return self._acquire(key, limit, per_seconds)

    def _acquire(self, key: str, limit: int, per_seconds: float) -> Verdict:
        now = self._clock.monotonic()
        self._calls += 1
        if self._calls % self._sweep_every == 0:
            self._sweep(now)
        _, times = self._logs.get(key, (per_seconds, deque()))
        while times and times[0] <= now - per_seconds:
            times.popleft()
        if len(times) >= limit:
            return Verdict(allowed=False, remaining=0,
                           retry_after=times[0] + per_seconds - now if times else per_seconds)
        times.append(now)
        self._logs[key] = (per_seconds, times)
        remaining = limit - len(times)
        retry_after = 0.0 if remaining else times[0] + per_seconds - now
        return Verdict(allowed=True, remaining=remaining, retry_after=retry_after)

    async def acquire_many(self, keys: Sequence[str], limit: int, per_seconds: float
                           ) -> list[Verdict]:
        # No await between the keys: one step, as the port asks, on this event loop.
        return [self._acquire(key, limit, per_seconds) for key in keys]

    async def close(self) -> None:
        self._logs.clear()

    def _sweep(self, now: float) -> None:
        """Forget keys whose window has passed, so unused keys cost nothing."""
        for key, (window, times) in list(self._logs.items()):
            if not times or times[-1] <= now - window:
                del self._logs[key]

    @property
    def keys(self) -> int:
        """How many keys hold state now."""
        return len(self._logs)
