"""The handler of delivery jobs: each sends one notification on one outbound channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from tocsin.channels.base import (
    Channel,
    Delivery,
    PermanentError,
    RetryableError,
    Unaddressable,
)
from tocsin.domain.models import Notification, UserProfile
from tocsin.jobs.base import DELIVERY, SKIP_IF_READ, Job
from tocsin.jobs.worker import Done, GiveUp, Outcome, Report, Skipped, TryAgain
from tocsin.store.base import Store

log = logging.getLogger("tocsin.worker")


class DeliveryHandler:
    kind = DELIVERY

    def __init__(self, store: Store, channels: Mapping[str, Channel]) -> None:
        self._store = store
        self._channels = channels

    async def run(self, jobs: Sequence[Job], report: Report) -> None:
        # What every delivery of the batch needs, in one read.
        targets = await self._store.notifications_with_profiles(
            {job.notification_id for job in jobs if job.notification_id is not None})

        async def one(job: Job) -> None:
            target = targets.get(job.notification_id) if job.notification_id else None
            await report(job, await self._attempt(job, target))

        await asyncio.gather(*(one(job) for job in jobs))

    async def _attempt(self, job: Job, target: tuple[Notification, UserProfile] | None
                       ) -> Outcome:
        if target is None:
            return Skipped("the notification no longer exists")
        channel = self._channels.get(job.channel or "")
        if channel is None:
            return GiveUp(f"channel {job.channel!r} is not configured")
        notification, user = target
        if job.payload.get(SKIP_IF_READ) and notification.read:
            return Skipped("read")
        delivery = Delivery(id=job.id, channel=channel.name, attempts=job.attempts,
                            notification=notification, user=user, lease_owner=job.lease_owner)
        try:
            await channel.send(delivery)
        except Unaddressable as exc:
            return Skipped(str(exc))
        except PermanentError as exc:
            return GiveUp(str(exc))
        except RetryableError as exc:
            return TryAgain(str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug in a channel: retry, never lose the delivery
            log.exception("channel %s failed unexpectedly", channel.name)
            return TryAgain(f"{type(exc).__name__}: {exc}")
        return Done()
