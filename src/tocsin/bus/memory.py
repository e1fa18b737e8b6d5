"""The in-process Bus: the embedded default, for a single process."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from tocsin.bus.base import GapHandler, Handler, Listener
from tocsin.domain.events import Event


class MemoryBus:
    """Hands each event straight to this process's hub; nothing is ever lost or reordered."""

    def __init__(self) -> None:
        self._handler: Handler | None = None
        self._users: set[str] = set()
        self._listeners: defaultdict[str, list[Listener]] = defaultdict(list)

    def set_handler(self, handler: Handler, on_gap: GapHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._users.clear()

    async def ping(self) -> None:
        return None

    async def publish(self, events: Sequence[tuple[str, Event]]) -> None:
        handler = self._handler
        if handler is None:
            return
        for user_id, event in events:
            if user_id in self._users:
                handler(user_id, event)

    async def subscribe(self, user_id: str) -> None:
        self._users.add(user_id)

    async def unsubscribe(self, user_id: str) -> None:
        self._users.discard(user_id)

    def listen(self, topic: str, listener: Listener) -> None:
        self._listeners[topic].append(listener)

    async def signal(self, topic: str, subject: str = "") -> None:
        for listener in tuple(self._listeners[topic]):
            listener(subject)
