"""The hub: this node's open connections, by user, fed by the bus."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

from tocsin.bus.base import Bus
from tocsin.domain.events import Event


class Listener(Protocol):
    user_id: str

    def deliver(self, event: Event) -> None:
        """Take one event; must not block (queue it or drop the connection)."""

    def resume(self) -> None:
        """Events may have been lost: catch up from the store."""


class Hub:
    """Subscribes this node to a user on the user's first local connection and unsubscribes
    after the last, so the node receives only what its own clients need."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._by_user: dict[str, set[Listener]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        bus.set_handler(self._dispatch, self._resume)

    @property
    def connections(self) -> int:
        return sum(len(listeners) for listeners in self._by_user.values())

    @property
    def users(self) -> int:
        return len(self._by_user)

    async def attach(self, listener: Listener) -> None:
        """Returns once events published from now on reach `listener`."""
        user = listener.user_id
        async with self._locks[user]:
            listeners = self._by_user.get(user)
            if listeners is None:
                await self._bus.subscribe(user)
                listeners = self._by_user[user] = set()
            listeners.add(listener)

    async def detach(self, listener: Listener) -> None:
        user = listener.user_id
        async with self._locks[user]:
            listeners = self._by_user.get(user)
            if listeners is None:
                return
            listeners.discard(listener)
            if not listeners:
                del self._by_user[user]
                await self._bus.unsubscribe(user)
        if user not in self._by_user and not self._locks[user].locked():
            self._locks.pop(user, None)

    def _dispatch(self, user_id: str, event: Event) -> None:
        for listener in tuple(self._by_user.get(user_id, ())):
            listener.deliver(event)

    def _resume(self, user_id: str | None) -> None:
        """Events of `user_id` (of everyone, for None) may have been lost: catch up."""
        if user_id is None:
            groups = tuple(self._by_user.values())
        else:
            groups = (self._by_user.get(user_id, set()),)
        for listeners in groups:
            for listener in tuple(listeners):
                listener.resume()
