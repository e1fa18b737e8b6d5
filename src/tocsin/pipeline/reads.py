"""Marking notifications read, whoever asks (the REST routes, a stream's client ops): the
store's change first, then its announcers (every stream of the user hears it, on every node).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tocsin.clock import Clock
from tocsin.domain.models import ReadChange
from tocsin.pipeline.base import ReadAnnouncer
from tocsin.pipeline.pipeline import announce
from tocsin.store.base import Store


class Reads:
    def __init__(self, store: Store, clock: Clock, announcers: Sequence[ReadAnnouncer]) -> None:
        self._store = store
        self._clock = clock
        self._announcers = tuple(announcers)

    async def mark_read(self, user_id: str, notification_id: uuid.UUID) -> ReadChange:
        change = await self._store.mark_read(user_id, notification_id, self._clock.now())
        await self._announce(user_id, change)
        return change

    async def mark_all_read(self, user_id: str, up_to_seq: int | None = None) -> ReadChange:
        change = await self._store.mark_all_read(user_id, self._clock.now(), up_to_seq)
        await self._announce(user_id, change)
        return change

    async def _announce(self, user_id: str, change: ReadChange) -> None:
        if change.ids:  # nothing changed, nothing to tell
            await announce([announcer.read_changed for announcer in self._announcers],
                           user_id, change)
