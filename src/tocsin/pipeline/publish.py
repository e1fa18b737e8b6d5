"""Publishing: from a validated request to committed notifications.

Stages run in this order: idempotency (in the store's transaction), then the policy stages
(templates, preferences, rate limits, grouping) as they are added, then the store. Only after
the store commits does anything leave the process: the fanout puts the new notifications and
counts on the bus for live delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tocsin.clock import Clock
from tocsin.domain.errors import InvalidInput
from tocsin.domain.models import NotificationDraft, Priority, PublishBatch, PublishOutcome
from tocsin.pipeline.fingerprint import fingerprint
from tocsin.realtime.fanout import Fanout
from tocsin.store.base import Store


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """What a publisher sent, already shape-checked by the API layer."""

    user_ids: Sequence[str]
    type: str
    data: dict[str, Any]
    title: str | None = None
    message: str | None = None
    action_url: str | None = None
    channels: Sequence[str] = ("web",)
    priority: Priority = "normal"
    expires_at: datetime | None = None


#: The live streams (WebSocket, SSE): every notification goes there; other channels are
#: outbound and go through the outbox.
LIVE_CHANNEL = "web"


class PublishPipeline:
    def __init__(self, store: Store, clock: Clock, *, max_batch_users: int,
                 idempotency_ttl_seconds: int, channels: frozenset[str],
                 fanout: Fanout | None = None,
                 on_queued: Callable[[], None] | None = None) -> None:
        self._store = store
        self._fanout = fanout
        self._on_queued = on_queued
        self._clock = clock
        self._max_batch_users = max_batch_users
        self._ttl = idempotency_ttl_seconds
        self._channels = channels

    async def publish(self, request: PublishRequest, *, publisher: str,
                      idempotency_key: str | None = None,
                      payload: dict[str, Any] | None = None) -> PublishOutcome:
        """Store the notifications and return their receipts once committed.

        `payload` is the request as received; with an `idempotency_key` its fingerprint decides
        whether a repeat is the same request.
        """
        now = self._clock.now()
        self._check(request, now)
        drafts = [
            NotificationDraft(
                user_id=user_id, type=request.type, data=request.data, title=request.title,
                message=request.message, action_url=request.action_url,
                priority=request.priority, expires_at=request.expires_at,
            )
            for user_id in request.user_ids
        ]
        outbound = tuple(sorted(set(request.channels) - {LIVE_CHANNEL}))
        batch = PublishBatch(
            publisher=publisher, drafts=drafts, idempotency_key=idempotency_key,
            fingerprint=fingerprint(payload or {}) if idempotency_key is not None else None,
            outbound=outbound,
        )
        outcome = await self._store.publish(batch, now, self._ttl)
        # Committed: only now may anything leave the process. A replay announces nothing new.
        if outcome.replayed:
            return outcome
        if self._fanout is not None:
            await self._fanout.published(outcome)
        if outbound and self._on_queued is not None:
            self._on_queued()
        return outcome

    def _check(self, request: PublishRequest, now: datetime) -> None:
        if not request.user_ids:
            raise InvalidInput("give user_id or a non-empty user_ids")
        if len(request.user_ids) > self._max_batch_users:
            raise InvalidInput(
                f"at most {self._max_batch_users} users per request, got {len(request.user_ids)}",
                details={"field": "user_ids", "max": self._max_batch_users},
            )
        if len(set(request.user_ids)) != len(request.user_ids):
            raise InvalidInput("user_ids contains the same user more than once",
                               details={"field": "user_ids"})
        unknown = sorted(set(request.channels) - self._channels)
        if unknown:
            raise InvalidInput(
                f"channel(s) {', '.join(unknown)} not available on this server; "
                f"available: {', '.join(sorted(self._channels))}",
                details={"field": "channels", "available": sorted(self._channels)},
            )
        if request.expires_at is not None and request.expires_at <= now:
            raise InvalidInput("expires_at is in the past", details={"field": "expires_at"})
