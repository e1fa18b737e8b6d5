"""The jobs Worker over MemoryJobs and a FrozenClock: outcomes become states, retries wait what
the policy and the handler say, max attempts make a dead letter, a failing handler loses no
job, and a slow batch keeps its leases. Time moves only when a test moves it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from tocsin.clock import FrozenClock
from tocsin.domain.errors import StoreUnavailable
from tocsin.jobs.base import Job, JobDraft
from tocsin.jobs.memory import MemoryJobs
from tocsin.jobs.worker import (
    Done,
    GiveUp,
    JobHandler,
    Outcome,
    Report,
    RetryPolicy,
    Skipped,
    TryAgain,
    Worker,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = 60.0
TICK = 1e-6  # one microsecond, the smallest step a due time keeps apart
KIND = "alpha"
POLICY = RetryPolicy(max_attempts=8, base_seconds=2.0, cap_seconds=10.0)


class Scripted:
    """A handler that reports `decide(job)` for each job, and remembers what it was given."""

    def __init__(self, decide: Callable[[Job], Outcome], kind: str = KIND) -> None:
        self.kind = kind
        self._decide = decide
        #: (payload n, attempts) of every job it was given, in order.
        self.seen: list[tuple[int, int]] = []

    async def run(self, jobs: Sequence[Job], report: Report) -> None:
        for job in jobs:
            self.seen.append((job.payload["n"], job.attempts))
            await report(job, self._decide(job))


def worker(jobs: MemoryJobs, clock: FrozenClock, *handlers: JobHandler,
           retry: RetryPolicy = POLICY, batch: int = 50, idle_seconds: float = 0.5,
           renew_seconds: float | None = None) -> Worker:
    return Worker(jobs, handlers, clock, retry=retry, lease_seconds=LEASE, batch=batch,
                  idle_seconds=idle_seconds, renew_seconds=renew_seconds)


async def queue(jobs: MemoryJobs, count: int, kind: str = KIND) -> None:
    drafts = [JobDraft(kind=kind, due_at=NOW, payload={"n": n}) for n in range(count)]
    assert await jobs.enqueue(drafts, NOW) == count


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def full_jitter(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Every retry delay is the longest its policy allows; returns the (low, high) asked for."""
    asked: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        asked.append((low, high))
        return high

    monkeypatch.setattr("tocsin.jobs.worker.random.uniform", uniform)
    return asked


async def test_each_outcome_becomes_the_job_s_state(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = MemoryJobs()
    await queue(jobs, 4)
    await queue(jobs, 1, kind="beta")
    await queue(jobs, 1, kind="gamma")  # no handler for it here
    outcomes: list[Outcome] = [Done(), Skipped("nothing to say"), GiveUp("never"),
                               TryAgain("busy")]
    alpha = Scripted(lambda job: outcomes[job.payload["n"]])
    beta = Scripted(lambda job: Done(), kind="beta")
    the_worker = worker(jobs, clock, alpha, beta)
    assert the_worker.kinds == [KIND, "beta"]

    with caplog.at_level(logging.INFO, logger="tocsin.worker"):
        assert await the_worker.run_once() == 5
    assert sorted(alpha.seen) == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert beta.seen == [(0, 1)]
    assert await jobs.counts() == {"done": 2, "skipped": 1, "dead": 1, "pending": 2}
    [letter] = await jobs.dead_letters()
    assert (letter.kind, letter.attempts, letter.last_error) == (KIND, 1, "never")
    # The gamma job was never claimed: its first claim is its first attempt.
    [gamma] = await jobs.claim(["gamma"], "someone", clock.now(), LEASE, 10)
    assert gamma.attempts == 1

    logged = {(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records
              if r.name == "tocsin.worker"}
    assert {level for level, _ in logged} == {logging.INFO, logging.WARNING, logging.ERROR}
    messages = [r.getMessage() for r in caplog.records if r.name == "tocsin.worker"]
    assert any("skipped: nothing to say" in m for m in messages)
    assert any("failed, attempt 1 of 8: busy; next attempt at" in m for m in messages)
    assert any(f"dead letter after attempt 1 of 8: permanent failure: never; once the cause is "
               f"fixed: tocsin dead-letters replay {letter.id}" in m for m in messages)


async def test_a_round_claims_at_most_a_batch(clock: FrozenClock) -> None:
    jobs = MemoryJobs()
    await queue(jobs, 5)
    handler = Scripted(lambda job: Done())
    the_worker = worker(jobs, clock, handler, batch=2)
    assert [await the_worker.run_once() for _ in range(4)] == [2, 2, 1, 0]
    assert sorted(n for n, _ in handler.seen) == [0, 1, 2, 3, 4]
    assert await jobs.counts() == {"done": 5}


def test_retry_delays_are_random_within_the_policy_s_bound() -> None:
    policy = RetryPolicy(base_seconds=2.0, cap_seconds=100.0)
    for attempt in range(1, 13):
        bound = min(100.0, 2.0 * 2 ** (attempt - 1))
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= delay <= bound for delay in delays), (attempt, max(delays))
        assert max(delays) > bound / 2, "full jitter spreads over the whole bound"
        assert len(set(delays)) > 100, "not in lock-step"


async def test_a_retry_is_due_at_the_latest_when_the_policy_s_bound_ends(
    clock: FrozenClock, full_jitter: list[tuple[float, float]]
) -> None:
    jobs = MemoryJobs()
    await queue(jobs, 1)
    handler = Scripted(lambda job: TryAgain("busy"))
    the_worker = worker(jobs, clock, handler)
    bounds = [2.0, 4.0, 8.0, 10.0, 10.0]  # base 2 doubling per attempt, capped at 10
    for bound in bounds:
        assert await the_worker.run_once() == 1
        clock.advance(bound - TICK)
        assert await the_worker.run_once() == 0  # not due yet
        clock.advance(TICK)
    assert await the_worker.run_once() == 1
    assert full_jitter == [(0, bound) for bound in [*bounds, 10.0]]
    assert [attempts for _, attempts in handler.seen] == [1, 2, 3, 4, 5, 6]


async def test_the_shortest_retry_is_due_at_once(clock: FrozenClock,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tocsin.jobs.worker.random.uniform", lambda low, high: low)
    jobs = MemoryJobs()
    await queue(jobs, 1)
    handler = Scripted(lambda job: TryAgain("busy") if job.attempts == 1 else Done())
    the_worker = worker(jobs, clock, handler)
    assert [await the_worker.run_once() for _ in range(3)] == [1, 1, 0]
    assert await jobs.counts() == {"done": 1}


async def test_a_handler_may_ask_for_a_later_retry_never_an_earlier_one(
    clock: FrozenClock, full_jitter: list[tuple[float, float]]
) -> None:
    jobs = MemoryJobs()
    await queue(jobs, 2)
    later, earlier = NOW + timedelta(hours=1), NOW + timedelta(seconds=1)

    def decide(job: Job) -> Outcome:
        if job.attempts > 1:
            return Done()
        # n=0: a provider's Retry-After of an hour; n=1: sooner than the policy's 2 s.
        return TryAgain("429 slow down", not_before=later if job.payload["n"] == 0 else earlier)

    handler = Scripted(decide)
    the_worker = worker(jobs, clock, handler)
    assert await the_worker.run_once() == 2
    clock.advance(2 - TICK)
    assert await the_worker.run_once() == 0  # not at 1 s, as n=1 asked: the policy says 2 s
    clock.advance(TICK)
    assert await the_worker.run_once() == 1
    assert handler.seen[-1] == (1, 2)
    clock.advance(3600 - 2 - TICK)
    assert await the_worker.run_once() == 0  # the hour n=0 asked for is not over
    clock.advance(TICK)
    assert await the_worker.run_once() == 1
    assert handler.seen[-1] == (0, 2)
    assert await jobs.counts() == {"done": 2}


async def test_after_max_attempts_a_job_is_a_dead_letter(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = MemoryJobs()
    await queue(jobs, 1)
    handler = Scripted(lambda job: TryAgain("SMTP 421 try later"))
    policy = RetryPolicy(max_attempts=3, base_seconds=1.0, cap_seconds=1.0)
    the_worker = worker(jobs, clock, handler, retry=policy)
    with caplog.at_level(logging.WARNING, logger="tocsin.worker"):
        for _ in range(3):
            assert await the_worker.run_once() == 1
            clock.advance(1.0)  # the longest the policy waits
    assert handler.seen == [(0, 1), (0, 2), (0, 3)]
    [letter] = await jobs.dead_letters()
    assert (letter.attempts, letter.last_error) == (3, "SMTP 421 try later")
    assert await jobs.counts() == {"dead": 1}
    clock.advance(86400)
    assert await the_worker.run_once() == 0  # no fourth attempt, however long one waits

    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tocsin.worker"]
    assert [level for level, _ in records] == [logging.WARNING, logging.WARNING, logging.ERROR]
    assert "attempt 1 of 3: SMTP 421 try later" in records[0][1]
    assert "attempt 2 of 3" in records[1][1]
    assert "dead letter after attempt 3 of 3: SMTP 421 try later" in records[2][1]


class RaisesAfterFirst:
    """A handler with a bug: it reports the job n=0, then raises for the rest."""

    kind = KIND

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    async def run(self, jobs: Sequence[Job], report: Report) -> None:
        for job in sorted(jobs, key=lambda job: job.payload["n"]):
            self.seen.append((job.payload["n"], job.attempts))
            if job.payload["n"] == 0:
                await report(job, Done())
            else:
                raise RuntimeError("boom")


async def test_a_handler_that_raises_has_its_unreported_jobs_retried(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = MemoryJobs()
    await queue(jobs, 3)
    handler = RaisesAfterFirst()
    policy = RetryPolicy(max_attempts=2, base_seconds=1.0, cap_seconds=1.0)
    the_worker = worker(jobs, clock, handler, retry=policy)
    with caplog.at_level(logging.ERROR, logger="tocsin.worker"):
        assert await the_worker.run_once() == 3  # the handler's exception stops at the worker
    assert await jobs.counts() == {"done": 1, "pending": 2}  # n=0 stays done
    [failure] = [r for r in caplog.records if r.name == "tocsin.worker"]
    assert failure.getMessage() == "the alpha handler failed"
    assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError

    clock.advance(1.0)
    assert await the_worker.run_once() == 2  # n=1 and n=2 again, each its second attempt
    assert handler.seen[-1] == (1, 2)
    dead = await jobs.dead_letters()
    assert sorted((letter.attempts, letter.last_error) for letter in dead) == \
        [(2, "RuntimeError: boom")] * 2
    assert await jobs.counts() == {"done": 1, "dead": 2}


async def test_a_store_outage_in_a_handler_leaves_its_jobs_to_their_leases(
    clock: FrozenClock
) -> None:
    jobs = MemoryJobs()
    await queue(jobs, 2)

    def decide(job: Job) -> Outcome:
        raise StoreUnavailable("the database is unavailable")

    the_worker = worker(jobs, clock, Scripted(decide))
    with pytest.raises(StoreUnavailable):
        await the_worker.run_once()
    # Nothing was recorded (the store could not take it): the jobs wait out their leases.
    assert await jobs.counts() == {"pending": 2}
    assert await jobs.claim([KIND], "rival", NOW + timedelta(seconds=LEASE), LEASE, 10) == []
    again = await jobs.claim([KIND], "rival", NOW + timedelta(seconds=LEASE + TICK), LEASE, 10)
    assert [job.attempts for job in again] == [2, 2]


class Outage(MemoryJobs):
    """The first `failures` claims find the database unreachable."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def claim(self, kinds: Collection[str], owner: str, now: datetime,
                    lease_seconds: float, limit: int) -> list[Job]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the database is unreachable: connection refused")
        return await super().claim(kinds, owner, now, lease_seconds, limit)


async def test_the_loop_pauses_through_a_store_outage_and_goes_on(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = Outage(failures=2)
    await queue(jobs, 1)
    done = asyncio.Event()

    def decide(job: Job) -> Outcome:
        done.set()
        return Done()

    the_worker = worker(jobs, clock, Scripted(decide), idle_seconds=0.01)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="tocsin.worker"):
        running = asyncio.create_task(the_worker.run(stop))
        await asyncio.wait_for(done.wait(), 10)
        stop.set()
        await asyncio.wait_for(running, 10)
    assert jobs.failures == 0
    assert await jobs.counts() == {"done": 1}
    paused = [r.getMessage() for r in caplog.records if r.name == "tocsin.worker"]
    assert paused == ["jobs paused: the database is unreachable: connection refused"] * 2


class Renewals(MemoryJobs):
    """MemoryJobs that tells when a lease was renewed, and by whom, when, on what."""

    def __init__(self) -> None:
        super().__init__()
        self.renewed = asyncio.Event()
        self.calls: list[tuple[str, set[uuid.UUID], datetime]] = []

    async def renew(self, owner: str, job_ids: Collection[uuid.UUID], now: datetime,
                    lease_seconds: float) -> int:
        count = await super().renew(owner, job_ids, now, lease_seconds)
        self.calls.append((owner, set(job_ids), now))
        self.renewed.set()
        return count


async def test_a_batch_slower_than_its_lease_keeps_its_leases_while_it_works(
    clock: FrozenClock
) -> None:
    """The handler takes five leases' worth of (frozen) time; the worker renews the leases as
    it goes, so a rival claiming meanwhile never takes (and runs again) what it works on."""
    jobs = Renewals()
    await queue(jobs, 3)
    stolen: list[Job] = []
    moments: list[datetime] = []

    class Slow:
        kind = KIND

        async def run(self, batch: Sequence[Job], report: Report) -> None:
            first, *rest = sorted(batch, key=lambda job: job.payload["n"])
            for step in range(6):
                jobs.renewed.clear()
                clock.advance(LEASE * 5 / 6)  # under a lease a step: the last renewal holds
                moments.append(clock.now())
                await asyncio.wait_for(jobs.renewed.wait(), 10)  # the next renewal, now
                stolen.extend(await jobs.claim([KIND], "rival", clock.now(), LEASE, 10))
                if step == 2:
                    await report(first, Done())
            for job in rest:
                await report(job, Done())

    the_worker = worker(jobs, clock, Slow(), renew_seconds=0.001)
    assert await the_worker.run_once() == 3
    assert clock.now() - NOW == timedelta(seconds=LEASE * 5)
    assert stolen == []
    assert await jobs.counts() == {"done": 3}  # every outcome recorded: the leases were held

    assert {owner for owner, _, _ in jobs.calls} == {the_worker.owner}
    assert {now for _, _, now in jobs.calls} >= set(moments)  # a renewal at every step
    ids = {frozenset(job_ids) for _, job_ids, _ in jobs.calls}
    assert max(len(job_ids) for job_ids in ids) == 3
    after_first = [job_ids for _, job_ids, now in jobs.calls if now > moments[2]]
    assert after_first and all(len(job_ids) == 2 for job_ids in after_first)  # done: let go
