"""The worker: claims due jobs, hands each kind to its handler, records every outcome.

A handler attempts its jobs and reports each outcome as soon as it has it (so a worker killed
halfway repeats only what it had not finished). The worker turns outcomes into the queue's
states: done, skipped, due again later, or a dead letter. Retries back off exponentially with
full jitter (a random delay between 0 and `min(cap, base * 2**(attempt - 1))`), so many
failing jobs do not retry in lock-step; a handler may ask for a later retry (a provider's
Retry-After), never an earlier one. After `max_attempts`, or on a permanent failure, a job
becomes a dead letter, listed and replayable through the admin API and the CLI.

While a batch is worked on, its leases are renewed every third of a lease: only a worker that
died or froze loses them, never one that is merely slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tocsin.clock import Clock
from tocsin.domain.errors import StoreUnavailable
from tocsin.jobs.base import Job, Jobs

log = logging.getLogger("tocsin.worker")


@dataclass(frozen=True, slots=True)
class Done:
    """The job did what it is for."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """There was nothing to do (no address, the notification is gone, it was read)."""

    reason: str


@dataclass(frozen=True, slots=True)
class TryAgain:
    """The attempt failed for a reason that may pass; retry, not before `not_before`."""

    error: str
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The job can never succeed as it is: a dead letter."""

    error: str


Outcome = Done | Skipped | TryAgain | GiveUp
Report = Callable[[Job, Outcome], Awaitable[None]]


class JobHandler(Protocol):
    """Runs the jobs of one kind.

    `run` attempts every job it is given and awaits `report(job, outcome)` once for each, as
    soon as that job's outcome is known; a job's failure is an outcome, not an exception. A
    job it did not report (it raised) is retried."""

    kind: str

    async def run(self, jobs: Sequence[Job], report: Report) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 3600.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)))


class Worker:
    def __init__(self, jobs: Jobs, handlers: Sequence[JobHandler], clock: Clock, *,
                 retry: RetryPolicy, lease_seconds: float = 60.0, batch: int = 50,
                 idle_seconds: float = 0.5, renew_seconds: float | None = None,
                 wake: asyncio.Event | None = None) -> None:
        self._jobs = jobs
        self._handlers = {handler.kind: handler for handler in handlers}
        self._clock = clock
        self._retry = retry
        self._lease = lease_seconds
        self._batch = batch
        self._idle = idle_seconds
        # How often a batch in progress renews its leases: a third of a lease unless told. A
        # test on a frozen clock renews often in real time while it moves the clock by leases.
        self._renew = renew_seconds if renew_seconds is not None else lease_seconds / 3
        # Given when what wakes the worker must exist before it: the publish pipeline's
        # announcer, which a fan-out handler of this worker publishes through.
        self._wake = wake if wake is not None else asyncio.Event()
        self._started = False
        self.owner = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    def wake(self) -> None:
        """New jobs were queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set. A database outage pauses the loop; it never ends it."""
        while not stop.is_set():
            # Cleared before looking, not after: a wake() while run_once runs (a publish that
            # committed just after the claim) must not be lost until the next idle poll.
            self._wake.clear()
            try:
                done = await self.run_once()
            except StoreUnavailable as exc:
                log.warning("jobs paused: %s", exc.message)
                done = 0
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                waits = [asyncio.ensure_future(self._wake.wait()),
                         asyncio.ensure_future(stop.wait())]
                try:
                    await asyncio.wait(waits, timeout=self._idle,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()

    async def _start_handlers(self) -> None:
        """Once per worker, before its first claim: handlers that queue their own recurring
        jobs (`start()`, e.g. the sweep) do so. A database outage raises, as a claim would,
        and the next round tries again."""
        for handler in self._handlers.values():
            start = getattr(handler, "start", None)
            if start is not None:
                await start()
        self._started = True

    async def run_once(self) -> int:
        """Claim one batch and work it; returns how many jobs were claimed."""
        if not self._started:
            await self._start_handlers()
        claimed = await self._jobs.claim(self.kinds, self.owner, self._clock.now(), self._lease,
                                         self._batch)
        if not claimed:
            return 0
        unfinished = {job.id: job for job in claimed}
        finished = asyncio.Event()
        keeper = asyncio.create_task(self._keep_leases(unfinished, finished))

        async def report(job: Job, outcome: Outcome) -> None:
            if unfinished.pop(job.id, None) is not None:
                await self._record(job, outcome)

        try:
            by_kind: dict[str, list[Job]] = {}
            for job in claimed:
                by_kind.setdefault(job.kind, []).append(job)
            await asyncio.gather(*(self._run(kind, jobs, report)
                                   for kind, jobs in by_kind.items()))
        finally:
            finished.set()
            await keeper
        return len(claimed)

    async def _run(self, kind: str, jobs: list[Job], report: Report) -> None:
        try:
            await self._handlers[kind].run(jobs, report)
        except StoreUnavailable:
            raise  # the leases lapse and the jobs are claimed again when the store is back
        except Exception as exc:  # a handler's bug: retry what it did not finish, never lose it
            log.exception("the %s handler failed", kind)
            for job in jobs:
                await report(job, TryAgain(f"{type(exc).__name__}: {exc}"))

    async def _keep_leases(self, unfinished: dict[uuid.UUID, Job],
                           finished: asyncio.Event) -> None:
        """Renew the batch's leases (every third of a lease) until it is done, so a batch
        slower than one lease is not claimed (and run again) by another worker meanwhile."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self._renew)
            if finished.is_set() or not unfinished:
                return
            try:
                await self._jobs.renew(self.owner, set(unfinished), self._clock.now(),
                                       self._lease)
            except StoreUnavailable as exc:
                log.warning("job leases not renewed: %s", exc.message)

    async def _record(self, job: Job, outcome: Outcome) -> None:
        now = self._clock.now()
        if isinstance(outcome, Done):
            await self._jobs.complete(job, now)
        elif isinstance(outcome, Skipped):
            log.info("%s skipped: %s", _name(job), outcome.reason)
            await self._jobs.complete(job, now, skipped=outcome.reason)
        elif isinstance(outcome, GiveUp):
            self._log_dead_letter(job, f"permanent failure: {outcome.error}")
            await self._jobs.bury(job, now, outcome.error)
        elif job.attempts >= self._retry.max_attempts:
            self._log_dead_letter(job, outcome.error)
            await self._jobs.bury(job, now, outcome.error)
        else:
            due = now + timedelta(seconds=self._retry.delay(job.attempts))
            if outcome.not_before is not None and outcome.not_before > due:
                due = outcome.not_before
            # Every failed attempt is logged: a provider refusing mail must be visible in the
            # server's log long before its jobs turn into dead letters.
            log.warning("%s failed, attempt %d of %d: %s; next attempt at %s (in %.1f s)",
                        _name(job), job.attempts, self._retry.max_attempts, outcome.error,
                        due.isoformat(timespec="seconds"), (due - now).total_seconds())
            await self._jobs.retry(job, now, outcome.error, due)

    def _log_dead_letter(self, job: Job, error: str) -> None:
        # An error: a user was not told, and nothing will try again until someone replays it.
        log.error("%s is a dead letter after attempt %d of %d: %s; once the cause is fixed: "
                  "tocsin dead-letters replay %s", _name(job), job.attempts,
                  self._retry.max_attempts, error, job.id)


def _name(job: Job) -> str:
    return f"{job.kind} {job.id}" + (f" ({job.channel})" if job.channel else "")
