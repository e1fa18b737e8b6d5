"""One body of tests for the RateLimiter port, run against every implementation.

Tests that need exact times run on the limiters whose clock a test can move (the in-memory
one, on a frozen clock). Every other test runs on each implementation; on Redis time is
Redis's own, so those tests use windows that cannot pass during the test, or wait for one to
pass without asserting how long that takes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from tests.support.services import REDIS_URL, private_redis, redis_limiter
from tocsin.clock import FrozenClock
from tocsin.limits.base import RateLimiter
from tocsin.limits.memory import MemoryRateLimiter
from tocsin.limits.redis import PREFIX, RedisRateLimiter

Make = Callable[[FrozenClock], RateLimiter]
HOUR = 3600  # a window no test outlives


@dataclass
class Limiters:
    """Two nodes sharing one limiter's state (the same instance, in process), the clock
    where a test may move it, and a key prefix of this test's own."""

    nodes: tuple[RateLimiter, RateLimiter]
    clock: FrozenClock | None
    prefix: str

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def elapse(self, seconds: float) -> None:
        """Let time pass: move the frozen clock, or wait."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiters(request: pytest.FixtureRequest) -> AsyncIterator[Limiters]:
    prefix = f"test-{uuid.uuid4().hex}:"
    if request.param == "memory":
        clock = FrozenClock()
        shared = MemoryRateLimiter(clock, sweep_every=3)
        yield Limiters((shared, shared), clock, prefix)
        await shared.close()
        return
    nodes = (redis_limiter(), redis_limiter())
    try:
        yield Limiters(nodes, None, prefix)
        left = await ttls(REDIS_URL, PREFIX + prefix)
        assert [key for key, ttl in left.items() if ttl == -1] == []
    finally:
        for node in nodes:
            await node.close()


@pytest.fixture(params=["memory"])
def make(request: pytest.FixtureRequest) -> Make:
    """A limiter on a clock the test moves."""
    return lambda clock: MemoryRateLimiter(clock, sweep_every=3)


async def ttls(url: str, prefix: str) -> dict[str, int]:
    """Every key under `prefix` (found with SCAN) and its PTTL: milliseconds to its expiry,
    -1 for none, -2 for a key that expired between the SCAN and the PTTL."""
    client = aioredis.Redis.from_url(url)
    try:
        found = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        return {key.decode(): await client.pttl(key) for key in found}
    finally:
        await client.aclose()


# -- on every implementation -------------------------------------------------------------------

async def test_at_most_limit_and_the_refused_say_when_to_retry(limiters: Limiters) -> None:
    one, other = limiters.nodes
    key = limiters.key("k")
    verdicts = [await node.acquire(key, 3, HOUR) for node in (one, other, one, other, one)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0, 0]
    assert verdicts[0].retry_after == 0 and verdicts[1].retry_after == 0
    assert all(0 < v.retry_after <= HOUR for v in verdicts[2:])
    assert not any(v.degraded for v in verdicts)


async def test_a_refused_acquisition_does_not_count(limiters: Limiters) -> None:
    """Refused every 50 ms for as long as it takes: if the refusals counted, the window would
    never empty and this would never be allowed again."""
    one, other = limiters.nodes
    key = limiters.key("k")
    assert (await one.acquire(key, 1, 0.2)).allowed
    for attempt in range(200):
        await limiters.elapse(0.05)
        verdict = await (other if attempt % 2 else one).acquire(key, 1, 0.2)
        if verdict.allowed:
            break
        assert 0 < verdict.retry_after <= 0.2
    else:
        raise AssertionError("the refusals kept the window full")


async def test_keys_are_independent(limiters: Limiters) -> None:
    one, other = limiters.nodes
    a, b = limiters.key("a"), limiters.key("b")
    assert (await one.acquire(a, 1, HOUR)).allowed
    assert not (await other.acquire(a, 1, HOUR)).allowed
    assert (await other.acquire(b, 1, HOUR)).allowed
    assert not (await one.acquire(b, 1, HOUR)).allowed
    assert (await one.acquire(limiters.key("c"), 2, HOUR)).remaining == 1


async def test_racing_acquisitions_on_two_nodes_allow_exactly_the_limit(limiters: Limiters
                                                                        ) -> None:
    one, other = limiters.nodes
    key = limiters.key("race")
    verdicts = await asyncio.gather(*((one if n % 2 else other).acquire(key, 10, HOUR)
                                      for n in range(200)))
    assert sum(v.allowed for v in verdicts) == 10
    assert not any(v.degraded for v in verdicts)
    assert not (await one.acquire(key, 10, HOUR)).allowed


async def test_many_keys_in_one_call(limiters: Limiters) -> None:
    one, other = limiters.nodes
    a, b, c = limiters.key("a"), limiters.key("b"), limiters.key("c")
    assert await one.acquire_many([], 1, HOUR) == []
    first = await one.acquire_many([a, b, a], 1, HOUR)  # a key named twice counts twice
    assert [v.allowed for v in first] == [True, True, False]
    second = await other.acquire_many([a, b, c], 1, HOUR)
    assert [v.allowed for v in second] == [False, False, True]
    assert (await one.acquire(c, 1, HOUR)).allowed is False
    batch = [limiters.key(f"user-{n}") for n in range(1000)]
    assert all(v.allowed for v in await one.acquire_many(batch, 2, HOUR))
    assert {v.remaining for v in await other.acquire_many(batch, 2, HOUR)} == {0}
    assert not any(v.allowed for v in await one.acquire_many(batch, 2, HOUR))


async def test_racing_batches_allow_exactly_the_limit_per_key(limiters: Limiters) -> None:
    one, other = limiters.nodes
    batch = [limiters.key(f"user-{n}") for n in range(50)]
    answers = await asyncio.gather(*((one if n % 2 else other).acquire_many(batch, 3, HOUR)
                                     for n in range(20)))
    allowed = [sum(answer[i].allowed for answer in answers) for i in range(len(batch))]
    assert allowed == [3] * len(batch)


# -- exact times, on a clock the test moves ----------------------------------------------------

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


async def test_keys_are_forgotten_once_their_window_passed(make: Make) -> None:
    clock = FrozenClock()
    limiter = make(clock)
    assert (await limiter.acquire("a", 1, 60)).allowed
    assert not (await limiter.acquire("a", 1, 60)).allowed
    clock.advance(61)
    assert (await limiter.acquire("a", 1, 60)).allowed  # a new window for a
    assert [v.allowed for v in await limiter.acquire_many(["a", "b"], 1, 60)] == [False, True]


# -- Redis: what only a shared, remote state has -----------------------------------------------

@pytest.mark.redis
async def test_every_key_expires_with_its_window() -> None:
    limiter = redis_limiter()
    prefix = f"test-{uuid.uuid4().hex}:"
    try:
        await limiter.acquire_many([f"{prefix}{n}" for n in range(20)], 1, 90)
        await limiter.acquire(f"{prefix}0", 1, 90)  # refused: the key keeps an expiry
        left = await ttls(REDIS_URL, PREFIX + prefix)
        assert len(left) == 20
        assert all(0 < ttl <= 90_000 for ttl in left.values()), left
    finally:
        await limiter.close()


@pytest.mark.redis
async def test_a_redis_outage_fails_open_within_the_timeout_and_counting_resumes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tocsin.limits")
    with private_redis() as server:
        limiter = RedisRateLimiter(server.url, timeout=0.5)
        try:
            assert (await limiter.acquire("k", 2, HOUR)).allowed
            server.pause()  # hung: connections open, nothing answered
            try:
                hung = await asyncio.wait_for(limiter.acquire("k", 2, HOUR), 3)
                assert hung.allowed and hung.degraded
                batch = await asyncio.wait_for(limiter.acquire_many(["x", "y"], 1, HOUR), 3)
                assert [(v.allowed, v.degraded) for v in batch] == [(True, True)] * 2
            finally:
                server.unpause()
            server.kill()  # down: connections refused
            down = await asyncio.wait_for(limiter.acquire("k", 2, HOUR), 3)
            assert down.allowed and down.degraded
            assert limiter.unchecked == 4
            server.start()  # the same port, empty: the windows start afresh
            verdicts = []
            for _ in range(20):  # the pooled connections of before fail once each
                verdict = await limiter.acquire("k", 2, HOUR)
                if not verdict.degraded:
                    verdicts.append(verdict)
                    break
            assert verdicts, "the limiter never counted again"
            verdicts += [await limiter.acquire("k", 2, HOUR) for _ in range(2)]
            assert [(v.allowed, v.degraded) for v in verdicts] == [
                (True, False), (True, False), (False, False)]
            assert limiter.unchecked == 0
            # Said once when it began (not once per call), and once when it ended.
            said = [r.getMessage() for r in caplog.records if r.name == "tocsin.limits"]
            assert [line.split(":")[0] for line in said] == [
                "rate limits not checked", "rate limits checked again"], said
            assert "4 acquisitions went unchecked" in said[1]
            left = await ttls(server.url, PREFIX)
            assert list(left) == [PREFIX + "k"] and 0 < left[PREFIX + "k"] <= HOUR * 1000
        finally:
            await limiter.close()
