"""Announcers that are not the live fan-out (which is `realtime.fanout.Fanout`)."""

from __future__ import annotations

from collections.abc import Callable

from tocsin.domain.drafts import PublishOutcome


class WorkerWake:
    """Wakes the in-process worker when a publish queued outbound deliveries, so they go out
    at once rather than at its next poll."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    async def published(self, outcome: PublishOutcome) -> None:
        if outcome.queued:
            self._wake()
