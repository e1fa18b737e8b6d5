"""From committed changes to bus events: the one place that decides what a change announces."""

from __future__ import annotations

from tocsin.bus.base import Bus
from tocsin.domain.drafts import PublishOutcome
from tocsin.domain.events import Event, notification_event, read_events, unread_event
from tocsin.domain.models import ReadChange


class Fanout:
    """Publishes events for changes the store has committed; never before the commit. An
    announcer of the publish pipeline and of reads."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def published(self, outcome: PublishOutcome) -> None:
        events: list[tuple[str, Event]] = []
        for item in outcome.stored:
            events.append((item.user_id, notification_event(item)))
            events.append((item.user_id, unread_event(outcome.unread[item.user_id])))
        if events:
            await self._bus.publish(events)

    async def read_changed(self, user_id: str, change: ReadChange) -> None:
        if change.ids:
            await self._bus.publish([(user_id, event) for event in read_events(change)])
