"""The handler of release jobs: a scheduled notification enters the inbox at its `send_at`.

Its outbound deliveries were queued with it, due at `send_at`; the release gives it its seq
and announces it (live fan-out) exactly as a publish would, after the commit."""

from __future__ import annotations

from collections.abc import Sequence

from tocsin.clock import Clock
from tocsin.jobs.base import RELEASE, Job
from tocsin.jobs.worker import Done, Report, Skipped
from tocsin.pipeline.base import PublishAnnouncer
from tocsin.pipeline.pipeline import announce
from tocsin.store.base import Store


class ReleaseHandler:
    kind = RELEASE

    def __init__(self, store: Store, clock: Clock, announcers: Sequence[PublishAnnouncer]
                 ) -> None:
        self._store = store
        self._clock = clock
        self._announcers = tuple(announcers)

    async def run(self, jobs: Sequence[Job], report: Report) -> None:
        for job in jobs:
            if job.notification_id is None:
                await report(job, Skipped("a release names no notification"))
                continue
            outcome = await self._store.release_scheduled(job.notification_id,
                                                          self._clock.now())
            if outcome is None:
                await report(job, Skipped("not scheduled any more (cancelled or released)"))
                continue
            await announce([announcer.published for announcer in self._announcers], outcome)
            await report(job, Done())
