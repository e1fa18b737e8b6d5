"""From committed changes to bus events: the one place that decides what a change announces."""

from __future__ import annotations

from tocsin.bus.base import Bus
from tocsin.domain.models import PublishOutcome, ReadChange
from tocsin.realtime.events import notification_event, read_events, unread_event


class Fanout:
    """Publishes events for changes the store has committed; never before the commit."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def published(self, outcome: PublishOutcome) -> None:
        for item in outcome.stored:
            await self._bus.publish(item.user_id, notification_event(item))
            await self._bus.publish(item.user_id, unread_event(outcome.unread[item.user_id]))

    async def read_changed(self, user_id: str, change: ReadChange) -> None:
        if not change.ids:
            return
        for event in read_events(change):
            await self._bus.publish(user_id, event)
