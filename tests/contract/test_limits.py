"""One body of tests for the RateLimiter port, run against every implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tocsin.clock import FrozenClock
from tocsin.limits.base import RateLimiter
from tocsin.limits.memory import MemoryRateLimiter

Make = Callable[[FrozenClock], RateLimiter]


@pytest.fixture(params=["memory"])
def make(request: pytest.FixtureRequest) -> Make:
    """A limiter on a clock the test moves."""
    return lambda clock: MemoryRateLimiter(clock, sweep_every=3)


async def test_at_most_limit_in_a_window_and_refusals_do_not_count(make: Make) -> None:
    clock = FrozenClock()
    limiter = make(clock)
    verdicts = []
    for _ in range(3):  # at 0, 10 and 20 s
        verdicts.append(await limiter.acquire("k", 3, 60))
        clock.advance(10)
    verdicts += [await limiter.acquire("k", 3, 60) for _ in range(2)]  # at 30 s: full
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0, 0]
    assert verdicts[0].retry_after == 0 and verdicts[3].retry_after == 30
    clock.advance(29)  # 59 s
    refused = await limiter.acquire("k", 3, 60)
    assert not refused.allowed and refused.retry_after == 1
    clock.advance(1)  # 60 s: the acquisition at 0 leaves the window, one slot and no more
    assert [(await limiter.acquire("k", 3, 60)).allowed for _ in range(2)] == [True, False]


async def test_the_window_slides(make: Make) -> None:
    clock = FrozenClock()
    limiter = make(clock)
    for _ in range(2):
        assert (await limiter.acquire("k", 2, 10)).allowed
        clock.advance(6)
    # t=12: the acquisition at 0 has left the window, the one at 6 has not.
    assert (await limiter.acquire("k", 2, 10)).allowed
    third = await limiter.acquire("k", 2, 10)
    assert not third.allowed and third.retry_after == 4


async def test_keys_are_independent_and_forgotten_once_their_window_passed(make: Make
                                                                         ) -> None:
    clock = FrozenClock()
    limiter = make(clock)
    assert (await limiter.acquire("a", 1, 60)).allowed
    assert not (await limiter.acquire("a", 1, 60)).allowed
    assert (await limiter.acquire("b", 1, 60)).allowed
    clock.advance(61)
    assert (await limiter.acquire("a", 1, 60)).allowed  # a new window for a


async def test_racing_acquisitions_allow_exactly_the_limit(make: Make) -> None:
    limiter = make(FrozenClock())
    verdicts = await asyncio.gather(*(limiter.acquire("race", 10, 3600) for _ in range(200)))
    assert sum(v.allowed for v in verdicts) == 10
