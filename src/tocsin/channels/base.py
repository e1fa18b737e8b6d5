"""The Channel port: one method that sends one delivery, or says why it did not."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from tocsin.domain.models import Notification, UserProfile


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbound delivery (a notification on one channel), leased by one worker."""

    id: uuid.UUID
    channel: str
    attempts: int  # counting the attempt this lease is for
    notification: Notification
    user: UserProfile
    lease_owner: str

    @property
    def message_id(self) -> str:
        """Stable across retries, so a receiver can recognise a repeated send."""
        return f"<{self.id}@tocsin>"


class RetryableError(Exception):
    """The attempt failed for a reason that may pass (a 4xx SMTP reply, a dropped connection):
    try again later, with backoff."""


class PermanentError(Exception):
    """The attempt failed for good (a 5xx SMTP reply): no retry; the delivery is a dead letter."""


class Unaddressable(Exception):
    """The user has no address on this channel (no email in the profile): skipped, not retried."""


class Channel(Protocol):
    """Sends deliveries of one channel.

    Guarantees every implementation gives: `send` returns only once the provider accepted the
    message; otherwise it raises one of the three errors above, never anything else for a
    provider's failure. A repeated send of one delivery carries the same idempotency identity
    (`Delivery.message_id`), so a receiver can recognise it.
    """

    name: str

    async def send(self, delivery: Delivery) -> None: ...

    async def close(self) -> None: ...
