"""The stage that decides each recipient's channels: the live one always (the inbox and its
streams), and every outbound channel the request names, queued at once.

Later stages refine these decisions per recipient (preferences turn a channel off, quiet hours
hold one until a time, rate limits throttle one), so each recipient's decisions are their own.
"""

from __future__ import annotations

from tocsin.domain.drafts import LIVE_CHANNEL, ChannelDecision
from tocsin.pipeline.base import Publish


class Routing:
    async def __call__(self, publish: Publish) -> None:
        outbound = sorted(set(publish.request.channels) - {LIVE_CHANNEL})
        for draft in publish.drafts:
            draft.channels[LIVE_CHANNEL] = ChannelDecision.live()
            for name in outbound:
                draft.channels[name] = ChannelDecision.queued()
