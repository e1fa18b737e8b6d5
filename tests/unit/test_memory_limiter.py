"""The in-process limiter forgets keys whose window has passed: unused keys cost nothing."""

from __future__ import annotations

from tocsin.clock import FrozenClock
from tocsin.limits.memory import MemoryRateLimiter


async def test_keys_whose_window_passed_are_swept() -> None:
    clock = FrozenClock()
    limiter = MemoryRateLimiter(clock, sweep_every=5)
    for n in range(4):
        await limiter.acquire(f"user-{n}", 1, 10)
    assert limiter.keys == 4
    clock.advance(11)
    await limiter.acquire("fresh", 1, 10)  # the fifth call sweeps
    assert limiter.keys == 1
