"""Publishing: from a validated request, through the stages, to the commit and the announcers.

Nothing leaves the process before the store commits: the stages only decide, the store writes
once, and the announcers run only with what was committed (and never for a replay, which
committed nothing new).

A publish to a topic is checked here before it is recorded (`check`: every stage over no
recipients, so the request-wide rules refuse it at once, with nothing written); each batch of
its fan-out is then an ordinary `publish` to the batch's users, carrying its step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tocsin.clock import Clock
from tocsin.domain.drafts import NotificationDraft, PublishBatch, PublishOutcome
from tocsin.domain.topics import FanoutStep
from tocsin.pipeline.base import Publish, PublishAnnouncer, PublishRequest, Stage
from tocsin.pipeline.fingerprint import fingerprint
from tocsin.store.base import Store

log = logging.getLogger("tocsin.pipeline")

#: Recipients from which a publish yields to the event loop between its stages.
_YIELD_FROM = 20


class PublishPipeline:
    def __init__(self, store: Store, clock: Clock, *, stages: Sequence[Stage],
                 announcers: Sequence[PublishAnnouncer], idempotency_ttl_seconds: int) -> None:
        self._store = store
        self._clock = clock
        self._stages = tuple(stages)
        self._announcers = tuple(announcers)
        self._ttl = idempotency_ttl_seconds

    @property
    def announcers(self) -> tuple[PublishAnnouncer, ...]:
        """What acts on a commit: also for what the worker commits as if published then."""
        return self._announcers

    async def check(self, request: PublishRequest, *, publisher: str) -> None:
        """Refuse (raise) what every stage would refuse whoever the recipients are: channels,
        expiry, the type and its title, the size of `exclude_user_ids`. Writes nothing."""
        publish = Publish(request=request, publisher=publisher, now=self._clock.now(),
                          drafts=[])
        for stage in self._stages:
            await stage(publish)

    async def publish(self, request: PublishRequest, *, publisher: str,
                      idempotency_key: str | None = None,
                      payload: dict[str, Any] | None = None,
                      step: FanoutStep | None = None) -> PublishOutcome:
        """Store the notifications and return their receipts once committed.

        `payload` is the request as received; with an `idempotency_key` its fingerprint decides
        whether a repeat is the same request. `step`: this is a batch of a fan-out, committed
        with its progress (or `StaleFanout` if another worker committed it first).
        """
        publish = Publish(request=request, publisher=publisher, now=self._clock.now(),
                          drafts=[_draft(request, user_id) for user_id in request.user_ids])
        # A large batch (a fan-out's, above all) gives the event loop back between stages:
        # each stage is one stretch of Python over every recipient, and the single publishes
        # queued behind a whole batch's stages waited for all of them (docs/benchmarks.md).
        yielding = len(publish.drafts) >= _YIELD_FROM
        for stage in self._stages:
            await stage(publish)
            if yielding:
                await asyncio.sleep(0)
        batch = PublishBatch(
            publisher=publisher, drafts=publish.drafts, idempotency_key=idempotency_key,
            fingerprint=fingerprint(payload or {}) if idempotency_key is not None else None,
            step=step,
        )
        outcome = await self._store.publish(batch, publish.now, self._ttl)
        if not outcome.replayed:
            await announce([announcer.published for announcer in self._announcers], outcome)
        return outcome


async def announce(calls: Sequence[Callable[..., Awaitable[None]]], *args: Any) -> None:
    """Await every announcer's call in turn; one that fails is logged, and the rest still run:
    what they announce is committed whatever happens to its announcement."""
    for call in calls:
        try:
            await call(*args)
        except Exception:
            log.exception("announcer %r failed", call)


def _draft(request: PublishRequest, user_id: str) -> NotificationDraft:
    return NotificationDraft(
        user_id=user_id, type=request.type, data=request.data, title=request.title,
        message=request.message, action_url=request.action_url, priority=request.priority,
        expires_at=request.expires_at, send_at=request.send_at,
    )
