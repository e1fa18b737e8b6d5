"""The Channel port: one method that sends one delivery, or says why it did not."""

from __future__ import annotations

from typing import Protocol

from tocsin.domain.models import Delivery


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
