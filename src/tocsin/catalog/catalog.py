"""Every node's copy of the notification types, read on every publish without a query.

Three layers, the later winning: the built-in types, those of `tocsin.toml`, and those defined
through the API (stored, so every node sees them). The merged result is kept in process. A
change through the API reloads this node's copy at once and signals every other node over the
bus (topic `types`), which reload theirs on their next read; in case a signal is lost (the bus
down at the time), every copy is also reloaded when it is older than `refresh_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from tocsin.bus.base import Bus
from tocsin.catalog.definition import definition_of, type_of
from tocsin.clock import Clock
from tocsin.domain.errors import StoreUnavailable
from tocsin.domain.types import NotificationType
from tocsin.store.base import Store

log = logging.getLogger("tocsin.catalog")

TOPIC = "types"
Origin = Literal["builtin", "config", "api"]


class TypeCatalog:
    def __init__(self, store: Store, bus: Bus, clock: Clock, *,
                 builtin: Mapping[str, NotificationType],
                 configured: Mapping[str, NotificationType],
                 refresh_seconds: float = 30.0) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._base: dict[str, tuple[NotificationType, Origin]] = {
            **{name: (kind, "builtin") for name, kind in builtin.items()},
            **{name: (kind, "config") for name, kind in configured.items()},
        }
        self._refresh = refresh_seconds
        self._types: dict[str, tuple[NotificationType, Origin]] | None = None
        self._loaded_at = 0.0
        self._generation = 0  # bumped by every signal: a copy older than it is stale
        self._loaded_generation = -1
        self._lock = asyncio.Lock()
        bus.listen(TOPIC, self._stale)

    def _stale(self, subject: str | None = None) -> None:
        self._generation += 1

    async def get(self, name: str) -> NotificationType | None:
        found = (await self._current()).get(name)
        return None if found is None else found[0]

    async def all(self) -> list[tuple[NotificationType, Origin]]:
        return [found for _, found in sorted((await self._current()).items())]

    async def origin(self, name: str) -> Origin | None:
        found = (await self._current()).get(name)
        return None if found is None else found[1]

    async def put(self, kind: NotificationType, now: datetime) -> NotificationType:
        await self._store.put_type_row(kind.name, definition_of(kind), now)
        await self._changed()
        return kind

    async def remove(self, name: str, now: datetime) -> bool:
        """Remove a type from this server (a built-in or configured one too); False if there
        was no such type."""
        if await self.get(name) is None:
            return False
        await self._store.put_type_row(name, None, now)
        await self._changed()
        return True

    async def _changed(self) -> None:
        self._stale()
        await self._current()
        await self._bus.signal(TOPIC)

    async def _current(self) -> dict[str, tuple[NotificationType, Origin]]:
        types = self._types
        if types is not None and self._fresh():
            return types
        async with self._lock:
            if self._types is not None and self._fresh():
                return self._types
            generation = self._generation
            try:
                rows = await self._store.type_rows()
            except StoreUnavailable:
                if self._types is None:
                    raise
                log.warning("types not reloaded: the database is unavailable; using the copy "
                            "loaded %.0fs ago", self._clock.monotonic() - self._loaded_at)
                return self._types
            merged = dict(self._base)
            for name, definition in rows.items():
                if definition is None:
                    merged.pop(name, None)
                    continue
                try:
                    merged[name] = (type_of(name, definition), "api")
                except Exception:  # stored by an older version with other rules: say so
                    log.exception("stored type %r cannot be read; it is ignored", name)
            self._types = merged
            self._loaded_at = self._clock.monotonic()
            self._loaded_generation = generation
            return merged

    def _fresh(self) -> bool:
        return (self._loaded_generation == self._generation
                and self._clock.monotonic() - self._loaded_at < self._refresh)
