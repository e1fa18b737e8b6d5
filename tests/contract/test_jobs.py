"""One body of tests for the Jobs port, run against MemoryJobs and SqlJobs on SQLite and
PostgreSQL: every guarantee of its docstring, seen through the port alone.

What only the SQL queue does (the rows it writes, the analytics events of deliveries, queueing
in the publish transaction) is in test_delivery_jobs.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from tests.support.jobs import clear_jobs
from tests.support.services import fresh_postgres_database
from tocsin.domain.errors import NotFound
from tocsin.jobs.base import Job, JobDraft, Jobs
from tocsin.jobs.memory import MemoryJobs
from tocsin.jobs.sql import SqlJobs
from tocsin.store.sql import SqlStore

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = 60.0
#: The smallest step of time every implementation keeps apart (both backends store
#: microseconds): "strictly after" is one tick after.
TICK = timedelta(microseconds=1)
KIND = "alpha"


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Claims take any due job in the database: this module gets a database of its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def implementation(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """"memory", or the URL of the database the SQL queue runs on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tocsin.db'}"
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return "memory"


@pytest.fixture
async def jobs(implementation: str) -> AsyncIterator[Jobs]:
    """Every test that takes this runs once per implementation of the port, on an empty queue."""
    if implementation == "memory":
        yield MemoryJobs()
        return
    store = SqlStore(implementation)
    await store.migrate()
    await clear_jobs(store)
    try:
        yield SqlJobs(store.db)
    finally:
        await store.close()


def draft(n: int = 0, *, kind: str = KIND, due: datetime = NOW, **fields: Any) -> JobDraft:
    """A job told apart from the others by its payload: {"n": n}."""
    return JobDraft(kind=kind, due_at=due, payload={"n": n}, **fields)


async def queued(jobs: Jobs, count: int, *, kind: str = KIND, due: datetime = NOW) -> None:
    assert await jobs.enqueue([draft(n, kind=kind, due=due) for n in range(count)], NOW) == count


async def claim_all(jobs: Jobs, owner: str = "worker-a", now: datetime = NOW,
                    kinds: tuple[str, ...] = (KIND,), limit: int = 100) -> dict[int, Job]:
    """Claim every due job; by the `n` of their payloads."""
    claimed = await jobs.claim(kinds, owner, now, LEASE, limit)
    by_n = {job.payload["n"]: job for job in claimed}
    assert len(by_n) == len(claimed), claimed
    return by_n


async def claim_one(jobs: Jobs, owner: str = "worker-a", now: datetime = NOW) -> Job:
    claimed = await jobs.claim([KIND], owner, now, LEASE, 10)
    assert len(claimed) == 1, claimed
    return claimed[0]


async def one_job(jobs: Jobs, owner: str = "worker-a") -> Job:
    """Queue one job due now and claim it."""
    await queued(jobs, 1)
    return await claim_one(jobs, owner)


async def assert_refused(jobs: Jobs, job: Job, now: datetime) -> None:
    """No outcome of `job`'s attempt is recorded any more."""
    assert await jobs.complete(job, now) is False
    assert await jobs.complete(job, now, skipped="late") is False
    assert await jobs.retry(job, now, "late", due_at=now) is False
    assert await jobs.bury(job, now, "late") is False


# -- enqueue -----------------------------------------------------------------------------------


async def test_enqueued_jobs_are_claimed_whole(jobs: Jobs) -> None:
    payload: dict[str, Any] = {"n": 0, "digest": {"users": ["ada", "grace"], "window": 3600}}
    given = [JobDraft(kind=KIND, due_at=at(-5), payload=payload, user_id="ada", channel="email"),
             draft(1, due=at(-1)), draft(2)]
    assert await jobs.enqueue(given, NOW) == 3
    payload["digest"]["users"].append("mallory")  # the caller's dict is not the queued one
    assert await jobs.counts() == {"pending": 3}

    claimed = await jobs.claim([KIND], "worker-a", NOW, LEASE, 10)
    assert [job.payload["n"] for job in claimed] == [0, 1, 2]
    first = claimed[0]
    assert first.payload == {"n": 0, "digest": {"users": ["ada", "grace"], "window": 3600}}
    assert (first.kind, first.user_id, first.channel, first.notification_id) == \
        (KIND, "ada", "email", None)
    assert [job.due_at for job in claimed] == [at(-5), at(-1), NOW]
    assert all(job.attempts == 1 and job.lease_owner == "worker-a" for job in claimed)
    assert len({job.id for job in claimed}) == 3
    assert (claimed[1].user_id, claimed[1].channel) == (None, None)


async def test_enqueue_queues_every_job_given_or_none(jobs: Jobs) -> None:
    """A job that cannot be stored (a payload that is not JSON, a time without a zone) fails the
    whole call: the jobs before it in the list are not queued either."""
    unstorable = [JobDraft(kind=KIND, due_at=NOW, payload={"n": 1, "when": object()}),
                  JobDraft(kind=KIND, due_at=datetime(2030, 1, 1), payload={"n": 1})]
    for bad in unstorable:
        # Which error says so is the implementation's (the driver's, wrapped by SQLAlchemy).
        with pytest.raises((TypeError, ValueError, sa_exc.StatementError)):
            await jobs.enqueue([draft(0), bad, draft(2)], NOW)
        assert await jobs.counts() == {}
        assert await jobs.claim([KIND], "worker-a", at(3600), LEASE, 10) == []
    assert await jobs.enqueue([draft(0), draft(2)], NOW) == 2
    assert sorted(await claim_all(jobs)) == [0, 2]


async def test_a_job_whose_key_is_queued_is_left_out_whatever_its_state(jobs: Jobs) -> None:
    assert await jobs.enqueue([draft(0, key="k-done")], NOW) == 1
    assert await jobs.enqueue([draft(1, key="k-done")], NOW) == 0
    # Only the new ones count: two unkeyed, one new key, one key seen, one key twice in a call.
    assert await jobs.enqueue([draft(2), draft(3, key="k-done"), draft(4, key="k-dead"),
                               draft(5, key="k-dead"), draft(6), draft(7, key="k-pending")],
                              NOW) == 4
    claimed = await claim_all(jobs)
    assert sorted(claimed) == [0, 2, 4, 6, 7]  # each key's first job, and every unkeyed one

    await jobs.complete(claimed[0], at(1))
    await jobs.bury(claimed[4], at(1), "gone")
    await jobs.retry(claimed[7], at(1), "busy", due_at=at(2))
    again = [draft(10, key="k-done"), draft(11, key="k-dead"), draft(12, key="k-pending")]
    assert await jobs.enqueue(again, at(3)) == 0
    assert await jobs.counts() == {"done": 1, "dead": 1, "pending": 3}
    assert sorted(await claim_all(jobs, "worker-b", at(3))) == [7]


async def test_concurrent_enqueues_of_one_key_queue_it_once(jobs: Jobs) -> None:
    for round_ in range(5):
        results = await asyncio.gather(
            *(jobs.enqueue([draft(n, key=f"k-{round_}")], NOW) for n in range(10)),
            return_exceptions=True)
        assert sorted(results, key=str) == [0] * 9 + [1], results  # no error: a racer is told 0
    assert await jobs.counts() == {"pending": 5}


# -- claims ------------------------------------------------------------------------------------


async def test_claim_takes_due_jobs_of_the_asked_kinds_earliest_first_at_most_limit(
    jobs: Jobs
) -> None:
    assert await jobs.enqueue([draft(30, due=at(30)), draft(10, due=at(10)),
                               draft(40, due=at(40)), draft(20, due=at(20)),
                               draft(0, kind="beta", due=at(0))], NOW) == 5

    first = await jobs.claim([KIND], "worker-a", at(30), LEASE, 2)
    assert [job.payload["n"] for job in first] == [10, 20]  # the two earliest due
    rest = await jobs.claim([KIND], "worker-a", at(30), LEASE, 10)
    assert [job.payload["n"] for job in rest] == [30]  # due exactly now is due; 40 is not yet
    assert await jobs.claim(["gamma"], "worker-a", at(3600), LEASE, 10) == []
    assert await jobs.claim([], "worker-a", at(3600), LEASE, 10) == []

    both = await jobs.claim([KIND, "beta"], "worker-b", at(40) - TICK, LEASE, 10)
    assert [(job.kind, job.payload["n"]) for job in both] == [("beta", 0)]
    [last] = await jobs.claim([KIND, "beta"], "worker-b", at(40), LEASE, 10)
    assert (last.kind, last.payload["n"], last.attempts) == (KIND, 40, 1)
    assert await jobs.counts() == {"pending": 5}


async def test_a_leased_job_is_not_claimed_again_until_strictly_after_its_lease(
    jobs: Jobs
) -> None:
    mine = await one_job(jobs, "worker-a")
    assert await jobs.claim([KIND], "worker-b", at(LEASE - 1), LEASE, 10) == []
    assert await jobs.claim([KIND], "worker-a", at(LEASE), LEASE, 10) == []  # lapses after

    theirs = await claim_one(jobs, "worker-b", at(LEASE) + TICK)
    assert theirs.id == mine.id
    assert (theirs.attempts, theirs.lease_owner) == (2, "worker-b")

    # The first owner finishes late: every outcome it reports is refused and changes nothing.
    await assert_refused(jobs, mine, at(LEASE + 2))
    assert await jobs.counts() == {"pending": 1}
    assert await jobs.dead_letters() == []
    # The refused retry (due at once) released nothing: worker-b's lease still holds.
    assert await jobs.claim([KIND], "worker-c", at(LEASE + 2), LEASE, 10) == []

    assert await jobs.bury(theirs, at(LEASE + 3), "theirs") is True
    [letter] = await jobs.dead_letters()
    assert (letter.id, letter.attempts, letter.last_error) == (mine.id, 2, "theirs")


async def test_an_owner_whose_lease_lapsed_unclaimed_still_records_its_outcome(
    jobs: Jobs
) -> None:
    await queued(jobs, 3)
    done, retried, buried = (await claim_all(jobs)).values()
    late = at(LEASE * 3)  # long after the leases lapsed; nobody claimed them meanwhile
    assert await jobs.complete(done, late) is True
    assert await jobs.retry(retried, late, "busy", due_at=late + timedelta(seconds=30)) is True
    assert await jobs.bury(buried, late, "gone") is True
    assert await jobs.counts() == {"done": 1, "pending": 1, "dead": 1}
    assert await jobs.claim([KIND], "worker-b", late, LEASE, 10) == []
    [again] = await jobs.claim([KIND], "worker-b", late + timedelta(seconds=30), LEASE, 10)
    assert (again.id, again.attempts) == (retried.id, 2)


async def test_renew_extends_only_the_leases_the_owner_still_holds(jobs: Jobs) -> None:
    await queued(jobs, 4)
    held, lapsing, finished, retried = (await claim_all(jobs)).values()
    assert await jobs.complete(finished, at(1))
    assert await jobs.retry(retried, at(1), "busy", due_at=at(3600))

    assert await jobs.renew("worker-a", {held.id}, at(30), LEASE) == 1  # held until 90
    assert await jobs.renew("worker-b", {held.id}, at(30), LEASE) == 0  # not theirs
    [taken] = await jobs.claim([KIND], "worker-b", at(LEASE + 1), LEASE, 10)
    assert taken.id == lapsing.id  # only the lease that was not renewed lapsed; b's until 121

    everything = {held.id, lapsing.id, finished.id, retried.id}
    assert await jobs.renew("worker-a", everything, at(LEASE + 2), LEASE) == 1  # until 122
    assert await jobs.renew("worker-a", set(), at(LEASE + 3), LEASE) == 0

    # Worker-b's lease was not touched by worker-a's renewal: it lapses after 121, not 122.
    assert await jobs.claim([KIND], "worker-c", at(2 * LEASE + 1), LEASE, 10) == []
    [again] = await jobs.claim([KIND], "worker-c", at(2 * LEASE + 1) + TICK, LEASE, 10)
    assert (again.id, again.attempts) == (lapsing.id, 3)
    # The renewed lease runs a whole lease from the renewal, and no longer.
    assert await jobs.claim([KIND], "worker-c", at(2 * LEASE + 2), LEASE, 10) == []
    assert await jobs.complete(held, at(2 * LEASE + 2)) is True
    assert await jobs.complete(again, at(2 * LEASE + 2)) is True
    # The retried job was released by its retry, not held by the renewal: due at its time.
    assert await jobs.claim([KIND], "worker-d", at(3600) - TICK, LEASE, 10) == []
    [due] = await jobs.claim([KIND], "worker-d", at(3600), LEASE, 10)
    assert (due.id, due.attempts) == (retried.id, 2)
    assert await jobs.counts() == {"done": 3, "pending": 1}


async def test_a_renewed_lease_lapses_one_lease_after_the_renewal(jobs: Jobs) -> None:
    held = await one_job(jobs)
    assert await jobs.renew("worker-a", {held.id}, at(50), LEASE) == 1
    assert await jobs.claim([KIND], "worker-b", at(50 + LEASE), LEASE, 10) == []
    [taken] = await jobs.claim([KIND], "worker-b", at(50 + LEASE) + TICK, LEASE, 10)
    assert (taken.id, taken.attempts) == (held.id, 2)
    assert await jobs.renew("worker-a", {held.id}, at(50 + LEASE + 1), LEASE) == 0
    await assert_refused(jobs, held, at(50 + LEASE + 1))


async def test_concurrent_claims_never_hand_out_one_job_twice(jobs: Jobs) -> None:
    await queued(jobs, 100)
    owners = [f"worker-{n}" for n in range(5)]
    batches = await asyncio.gather(*(jobs.claim([KIND], owner, NOW, LEASE, 30)
                                     for owner in owners))
    handed_out = [job.id for batch in batches for job in batch]
    assert len(handed_out) == len(set(handed_out)), "a job was claimed twice"
    assert len(handed_out) == 100  # 5 x 30 is room for all: none is left behind
    assert all(len(batch) <= 30 for batch in batches)
    assert await jobs.claim([KIND], "worker-late", NOW, LEASE, 100) == []
    for owner, batch in zip(owners, batches, strict=True):
        for job in batch:
            assert (job.lease_owner, job.attempts) == (owner, 1)
    # Each lease is held by the owner it was handed to: that owner's outcome is recorded.
    results = await asyncio.gather(*(jobs.complete(job, at(1))
                                     for batch in batches for job in batch))
    assert all(results)
    assert await jobs.counts() == {"done": 100}


# -- outcomes ----------------------------------------------------------------------------------


async def test_complete_finishes_a_job_for_good(jobs: Jobs) -> None:
    job = await one_job(jobs)
    assert await jobs.complete(job, at(1)) is True
    assert await jobs.counts() == {"done": 1}
    # A finished job takes no second outcome, no renewal, and is never claimed again.
    await assert_refused(jobs, job, at(2))
    assert await jobs.renew("worker-a", {job.id}, at(2), LEASE) == 0
    assert await jobs.claim([KIND], "worker-a", at(3600), LEASE, 10) == []
    assert await jobs.counts() == {"done": 1}
    assert await jobs.dead_letters() == []


async def test_complete_with_a_reason_skips_the_job(jobs: Jobs) -> None:
    job = await one_job(jobs)
    assert await jobs.complete(job, at(1), skipped="the user has no email address") is True
    assert await jobs.counts() == {"skipped": 1}
    await assert_refused(jobs, job, at(2))
    assert await jobs.claim([KIND], "worker-a", at(3600), LEASE, 10) == []
    assert await jobs.dead_letters() == []  # skipped is not failed


async def test_retry_makes_the_job_due_again_exactly_then_and_not_before(jobs: Jobs) -> None:
    job = await one_job(jobs)
    assert await jobs.retry(job, at(1), "SMTP 450 mailbox busy", due_at=at(30)) is True
    assert await jobs.counts() == {"pending": 1}
    await assert_refused(jobs, job, at(2))  # the attempt is over: its lease was released

    assert await jobs.claim([KIND], "worker-b", at(30) - TICK, LEASE, 10) == []
    # Due at 30, well before the old lease (until 60) would have lapsed: it was released.
    again = await claim_one(jobs, "worker-b", at(30))
    assert (again.id, again.attempts, again.lease_owner) == (job.id, 2, "worker-b")
    assert again.due_at == at(30)
    assert await jobs.complete(again, at(31)) is True
    assert await jobs.counts() == {"done": 1}


async def test_a_retry_due_at_once_is_claimed_at_once(jobs: Jobs) -> None:
    job = await one_job(jobs)
    assert await jobs.retry(job, at(1), "dropped", due_at=at(1)) is True
    again = await claim_one(jobs, "worker-b", at(1))
    assert (again.id, again.attempts) == (job.id, 2)


async def test_bury_makes_a_dead_letter(jobs: Jobs) -> None:
    assert await jobs.enqueue([draft(0, user_id="ada", channel="email")], NOW) == 1
    job = await claim_one(jobs)
    assert await jobs.bury(job, at(1), "SMTP 550 no such user") is True
    assert await jobs.counts() == {"dead": 1}
    [letter] = await jobs.dead_letters()
    assert (letter.id, letter.kind, letter.user_id, letter.channel, letter.notification_id) == \
        (job.id, KIND, "ada", "email", None)
    assert (letter.attempts, letter.last_error, letter.updated_at) == \
        (1, "SMTP 550 no such user", at(1))
    assert letter.to_json() == {
        "id": str(job.id), "kind": KIND, "notification_id": None, "user_id": "ada",
        "channel": "email", "attempts": 1, "last_error": "SMTP 550 no such user",
        "updated_at": "2030-01-01T12:00:01Z"}
    await assert_refused(jobs, job, at(2))
    assert await jobs.claim([KIND], "worker-a", at(3600), LEASE, 10) == []


async def test_dead_letters_lists_only_dead_jobs_newest_first(jobs: Jobs) -> None:
    await queued(jobs, 5)
    first, second, done, skipped, retried = (await claim_all(jobs)).values()
    await jobs.bury(first, at(1), "first error")
    await jobs.bury(second, at(2), "second error")
    await jobs.complete(done, at(3))
    await jobs.complete(skipped, at(3), skipped="no email")
    await jobs.retry(retried, at(3), "retry me", due_at=at(60))

    dead = await jobs.dead_letters()
    assert [letter.id for letter in dead] == [second.id, first.id]
    assert [(letter.attempts, letter.last_error, letter.updated_at) for letter in dead] == \
        [(1, "second error", at(2)), (1, "first error", at(1))]
    assert [letter.id for letter in await jobs.dead_letters(limit=1)] == [second.id]


async def test_replay_queues_a_dead_letter_again_with_no_attempts(jobs: Jobs) -> None:
    job = await one_job(jobs)
    await jobs.bury(job, at(1), "SMTP 550 no such user")

    replayed = await jobs.replay(job.id, at(100))
    assert (replayed.id, replayed.attempts) == (job.id, 0)
    assert await jobs.counts() == {"pending": 1}
    assert await jobs.dead_letters() == []
    await assert_refused(jobs, job, at(100))  # the buried attempt's owner holds nothing now

    assert await jobs.claim([KIND], "worker-b", at(100) - TICK, LEASE, 10) == []  # due now
    again = await claim_one(jobs, "worker-b", at(100))
    assert (again.id, again.attempts, again.payload) == (job.id, 1, {"n": 0})
    assert await jobs.complete(again, at(101)) is True
    with pytest.raises(NotFound):  # done now: no longer a dead letter
        await jobs.replay(job.id, at(102))
    assert await jobs.counts() == {"done": 1}


async def test_replay_of_anything_but_a_dead_letter_is_not_found(jobs: Jobs) -> None:
    await queued(jobs, 5)
    leased, done, skipped, retried, dead = (await claim_all(jobs)).values()
    await jobs.complete(done, at(1))
    await jobs.complete(skipped, at(1), skipped="no email")
    await jobs.retry(retried, at(1), "busy", due_at=at(30))
    await jobs.bury(dead, at(1), "gone")
    for job_id in (leased.id, done.id, skipped.id, retried.id, uuid.uuid4()):
        with pytest.raises(NotFound, match="no dead letter with this id"):
            await jobs.replay(job_id, at(2))
    assert await jobs.counts() == {"pending": 2, "done": 1, "skipped": 1, "dead": 1}
    assert await jobs.complete(leased, at(2)) is True  # still worker-a's lease, untouched
    assert await jobs.claim([KIND], "worker-b", at(30) - TICK, LEASE, 10) == []  # still at 30

    await jobs.replay(dead.id, at(2))
    with pytest.raises(NotFound):  # already replayed: no longer a dead letter
        await jobs.replay(dead.id, at(3))


async def test_counts_cover_every_state(jobs: Jobs) -> None:
    assert await jobs.counts() == {}
    await queued(jobs, 5)
    claimed = await jobs.claim([KIND], "worker-a", NOW, LEASE, 4)
    done, skipped, dead, _leased = claimed
    await jobs.complete(done, at(1))
    await jobs.complete(skipped, at(1), skipped="no email")
    await jobs.bury(dead, at(1), "gone")
    assert await jobs.counts() == {"done": 1, "skipped": 1, "dead": 1, "pending": 2}
