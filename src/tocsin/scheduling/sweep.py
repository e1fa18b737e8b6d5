"""The periodic sweep: expired notifications leave the inbox (counters down, streams told the
new count), and what is older than the retention is purged.

It runs as a job of the queue, so with many workers it runs once per period, not once per
worker: each sweep queues the next one first (keyed by its due time: queueing it twice is a
no-op), and every worker queues the one due now when it starts, so the chain survives any
worker's death."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from tocsin.bus.base import Bus
from tocsin.clock import Clock
from tocsin.domain.events import unread_event
from tocsin.jobs.base import SWEEP, Job, JobDraft, Jobs
from tocsin.jobs.worker import Done, Report
from tocsin.store.base import Store

_BATCH = 1000


class Sweeper:
    kind = SWEEP

    def __init__(self, store: Store, jobs: Jobs, bus: Bus, clock: Clock, *,
                 every_seconds: float, retention_days: int) -> None:
        self._store = store
        self._jobs = jobs
        self._bus = bus
        self._clock = clock
        self._every = every_seconds
        self._retention = timedelta(days=retention_days)

    def job_at(self, due: datetime) -> JobDraft:
        """The sweep due at `due`, rounded down to its period: one key per period."""
        slot = int(due.timestamp() // self._every)
        at = datetime.fromtimestamp(slot * self._every, tz=due.tzinfo)
        return JobDraft(kind=SWEEP, due_at=at, key=f"sweep:{slot}:{self._every:g}")

    async def start(self) -> None:
        """Queue the sweep of the current period (a no-op if one is queued or ran)."""
        now = self._clock.now()
        await self._jobs.enqueue([self.job_at(now)], now)

    async def run(self, jobs: Sequence[Job], report: Report) -> None:
        now = self._clock.now()
        # The next one first: a sweep that dies halfway still has a successor.
        await self._jobs.enqueue([self.job_at(now + timedelta(seconds=self._every))], now)
        await self.sweep(now)
        for job in jobs:
            await report(job, Done())

    async def sweep(self, now: datetime) -> tuple[int, int]:
        """Expire and purge everything due; (users whose count changed, rows purged)."""
        changed = 0
        while True:
            expired, counts = await self._store.expire_notifications(now, _BATCH)
            if counts:  # after the commit: every stream of these users shows the new count
                changed += len(counts)
                await self._bus.publish([(user_id, unread_event(count))
                                         for user_id, count in counts.items()])
            if expired < _BATCH:
                break
        purged = 0
        while (deleted := await self._store.purge_notifications(now - self._retention, _BATCH)):
            purged += deleted
            if deleted < _BATCH:
                break
        return changed, purged

