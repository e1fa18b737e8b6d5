"""The stage that throttles a type's outbound deliveries per user: its `rate_limit`.

A type may say how many of its emails and pushes one user may get in a window. Each recipient
with a delivery to queue (now, or held for quiet hours) takes one acquisition of
`type:{type}:user:{user_id}` per notification, however many channels it goes out on; over the
limit, every such delivery of that recipient becomes `throttled`. The notification itself is
stored and shown in the inbox all the same: a limit on how often a user is emailed must never
lose the notification. Critical types are never throttled.

The whole batch is acquired in one call (one round trip on Redis). When the limiter cannot
count (Redis down), it lets every delivery through (fail open) and says so in its log.
"""

from __future__ import annotations

from tocsin.domain.drafts import THROTTLED, ChannelDecision
from tocsin.limits.base import RateLimiter
from tocsin.pipeline.base import Publish


def throttle_key(type_: str, user_id: str) -> str:
    return f"type:{type_}:user:{user_id}"


class Throttle:
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def __call__(self, publish: Publish) -> None:
        kind = publish.kind
        if kind is None or kind.critical or kind.rate_limit is None:
            return
        sending = [draft for draft in publish.drafts
                   if any(decision.enqueues for decision in draft.channels.values())]
        if not sending:
            return
        verdicts = await self._limiter.acquire_many(
            [throttle_key(kind.name, draft.user_id) for draft in sending],
            kind.rate_limit.limit, kind.rate_limit.per_seconds)
        for draft, verdict in zip(sending, verdicts, strict=True):
            if verdict.allowed:
                continue
            for name, decision in draft.channels.items():
                if decision.enqueues:
                    draft.channels[name] = ChannelDecision.dropped(THROTTLED)
