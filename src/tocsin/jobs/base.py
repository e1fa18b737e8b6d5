"""The Jobs port: durable, leased, retried work that is due at a time, keyed by kind.

Outbound deliveries are jobs of kind `delivery` (one per notification and channel), queued in
the publish transaction itself. Scheduled sends, escalation steps, topic fan-out chunks,
digests and expiry sweeps are further kinds: each is a handler the worker runs, not a queue of
its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tocsin.domain.models import iso

#: A delivery's payload flag: skip it if its notification has been read by the time it is
#: due (a delivery held back by quiet hours is not sent for what the user has already seen).
SKIP_IF_READ = "skip_if_read"

#: The kind of the job that releases a scheduled notification at its `send_at`.
RELEASE = "release"
#: The kind of the periodic job that hides expired notifications and purges old ones.
SWEEP = "sweep"

#: The kind of an outbound delivery: a notification on one channel.
DELIVERY = "delivery"

#: The kind of a topic's fan-out: its payload names the fan-out (`fanout_id`).
FANOUT = "fanout"

PENDING, DONE, SKIPPED, DEAD = "pending", "done", "skipped", "dead"


@dataclass(frozen=True, slots=True)
class JobDraft:
    """A job to queue. `key`, when given, makes queueing idempotent: a second job with the same
    key is not queued while the first exists, whatever its state. Deliveries name their
    notification, user and channel; other kinds carry what they need in `payload`."""

    kind: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    notification_id: uuid.UUID | None = None
    user_id: str | None = None
    channel: str | None = None
    #: The notification's type, for the analytics events of a delivery.
    notification_type: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A job leased by `lease_owner`; `attempts` counts the claim this lease is for."""

    id: uuid.UUID
    kind: str
    attempts: int
    lease_owner: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    notification_id: uuid.UUID | None = None
    user_id: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that failed for good, kept until it is replayed."""

    id: uuid.UUID
    kind: str
    notification_id: uuid.UUID | None
    user_id: str | None
    channel: str | None
    attempts: int
    last_error: str | None
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "kind": self.kind,
                "notification_id": None if self.notification_id is None
                else str(self.notification_id),
                "user_id": self.user_id, "channel": self.channel, "attempts": self.attempts,
                "last_error": self.last_error, "updated_at": iso(self.updated_at)}


class Jobs(Protocol):
    """The queue of jobs.

    Guarantees every implementation gives:

    - `enqueue` queues every job given or none of them; a job whose `key` is already queued
      (in any state) is left out, and only the new ones count in the result.
    - A job is claimed only when it is pending, due (`due_at <= now`) and not leased, or its
      lease has lapsed; of the kinds asked for; earliest due first. Concurrent claims never
      return the same job: a claim is a lease held by one owner until `lease_until`.
    - The outcome of an attempt (`complete`, `retry`, `bury`) is recorded only while the owner
      still holds the lease, and says so (True); after the lease lapsed and another owner took
      it, it is refused (False). So a job runs at least once, and more than once only when a
      lease lapsed.
    - `attempts` counts claims; `replay` makes a dead letter pending and due again, with
      `attempts` back to 0.
    - A failure to reach the storage raises `StoreUnavailable`.
    """

    async def enqueue(self, jobs: Sequence[JobDraft], now: datetime) -> int:
        """Queue the jobs; returns how many were new."""

    async def claim(self, kinds: Collection[str], owner: str, now: datetime,
                    lease_seconds: float, limit: int) -> list[Job]:
        """Lease up to `limit` due jobs of these kinds to `owner`."""

    async def renew(self, owner: str, job_ids: Collection[uuid.UUID], now: datetime,
                    lease_seconds: float) -> int:
        """Extend the leases `owner` still holds on these jobs; returns how many."""

    async def complete(self, job: Job, now: datetime, skipped: str | None = None) -> bool:
        """The job is done (or, with a reason, skipped: there was nothing to do)."""

    async def retry(self, job: Job, now: datetime, error: str, due_at: datetime) -> bool:
        """The attempt failed; the job is due again at `due_at`."""

    async def bury(self, job: Job, now: datetime, error: str) -> bool:
        """The job failed for good: a dead letter."""

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""

    async def replay(self, job_id: uuid.UUID, now: datetime) -> DeadLetter:
        """Queue a dead letter again, or `NotFound`."""

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
