"""The outbox worker: claims due deliveries, sends them, records each outcome.

Retries back off exponentially with full jitter (a random delay between 0 and
`min(cap, base * 2**(attempt - 1))`), so many failing deliveries do not retry in lock-step.
After `max_attempts`, or on a permanent error, a delivery becomes a dead letter, listed and
replayable through the admin API and the CLI.

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
from dataclasses import dataclass
from datetime import timedelta

from tocsin.channels.base import Channel, PermanentError, RetryableError, Unaddressable
from tocsin.clock import Clock
from tocsin.domain.errors import StoreUnavailable
from tocsin.domain.models import Delivery
from tocsin.store.outbox import SqlOutbox

log = logging.getLogger("tocsin.worker")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 3600.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)))


class Worker:
    def __init__(self, outbox: SqlOutbox, channels: dict[str, Channel], clock: Clock, *,
                 retry: RetryPolicy, lease_seconds: float = 60.0, batch: int = 50,
                 idle_seconds: float = 0.5) -> None:
        self._outbox = outbox
        self._channels = channels
        self._clock = clock
        self._retry = retry
        self._lease = lease_seconds
        self._batch = batch
        self._idle = idle_seconds
        self._wake = asyncio.Event()
        self.owner = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"

    def wake(self) -> None:
        """New deliveries were queued: look now rather than at the next poll."""
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
                log.warning("outbox paused: %s", exc.message)
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

    async def run_once(self) -> int:
        """Claim one batch and process it; returns how many deliveries were claimed."""
        deliveries = await self._outbox.claim(self.owner, self._clock.now(), self._lease,
                                              self._batch)
        if deliveries:
            unfinished = {delivery.id for delivery in deliveries}
            finished = asyncio.Event()
            keeper = asyncio.create_task(self._keep_leases(unfinished, finished))
            try:
                await asyncio.gather(*(self._process(delivery, unfinished)
                                       for delivery in deliveries))
            finally:
                finished.set()
                await keeper
        return len(deliveries)

    async def _keep_leases(self, unfinished: set[uuid.UUID], finished: asyncio.Event) -> None:
        """Renew the batch's leases every third of a lease until it is done, so a batch slower
        than one lease is not claimed (and sent again) by another worker meanwhile."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self._lease / 3)
            if finished.is_set() or not unfinished:
                return
            try:
                await self._outbox.renew(self.owner, set(unfinished), self._clock.now(),
                                         self._lease)
            except StoreUnavailable as exc:
                log.warning("outbox leases not renewed: %s", exc.message)

    async def _process(self, delivery: Delivery, unfinished: set[uuid.UUID]) -> None:
        try:
            await self._attempt(delivery)
        finally:
            unfinished.discard(delivery.id)

    async def _attempt(self, delivery: Delivery) -> None:
        channel = self._channels.get(delivery.channel)
        try:
            if channel is None:
                raise PermanentError(f"channel {delivery.channel!r} is not configured")
            await channel.send(delivery)
        except Unaddressable as exc:
            log.info("delivery %s (%s) skipped: %s", delivery.id, delivery.channel, exc)
            await self._outbox.skipped(delivery, self._clock.now(), str(exc))
        except PermanentError as exc:
            self._log_dead_letter(delivery, f"permanent failure: {exc}")
            await self._outbox.failed(delivery, self._clock.now(), str(exc), retry_at=None)
        except Exception as exc:  # RetryableError, or a bug in a channel: retry, never lose it
            if not isinstance(exc, RetryableError):
                log.exception("channel %s failed unexpectedly", delivery.channel)
            await self._failed(delivery, f"{exc}" or type(exc).__name__)
        else:
            await self._outbox.sent(delivery, self._clock.now())

    async def _failed(self, delivery: Delivery, error: str) -> None:
        now = self._clock.now()
        if delivery.attempts >= self._retry.max_attempts:
            self._log_dead_letter(delivery, error)
            await self._outbox.failed(delivery, now, error, retry_at=None)
            return
        delay = self._retry.delay(delivery.attempts)
        retry_at = now + timedelta(seconds=delay)
        # Every failed attempt is logged: an SMTP server refusing mail must be visible in the
        # server's log long before its deliveries turn into dead letters.
        log.warning("delivery %s (%s) failed, attempt %d of %d: %s; next attempt at %s "
                    "(in %.1f s)", delivery.id, delivery.channel, delivery.attempts,
                    self._retry.max_attempts, error, retry_at.isoformat(timespec="seconds"),
                    delay)
        await self._outbox.failed(delivery, now, error, retry_at=retry_at)

    def _log_dead_letter(self, delivery: Delivery, error: str) -> None:
        # An error: a user was not told, and nothing will try again until someone replays it.
        log.error("delivery %s (%s) is a dead letter after attempt %d of %d: %s; once the "
                  "cause is fixed: tocsin dead-letters replay %s", delivery.id,
                  delivery.channel, delivery.attempts, self._retry.max_attempts, error,
                  delivery.id)
