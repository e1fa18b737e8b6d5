"""One client connection: carries out its Session's actions, whatever the transport.

The hub hands it events (`deliver`); a transport pulls what to write (`next`), and feeds it the
client's frames (`message`). Sends go through a bounded queue: a client that cannot keep up is
closed with 1013 rather than growing this node's memory, and it recovers by seq when it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from tocsin.clock import Clock
from tocsin.domain.errors import NotFound, TocsinError
from tocsin.realtime.events import Event
from tocsin.realtime.fanout import Fanout
from tocsin.realtime.hub import Hub
from tocsin.realtime.session import (
    TRY_AGAIN_LATER,
    Action,
    Close,
    Fetch,
    Heartbeat,
    MarkRead,
    Send,
    Session,
)
from tocsin.store.base import Store

log = logging.getLogger("tocsin.realtime")

Outgoing = Event | Heartbeat | Close


@dataclass(slots=True)
class LiveServices:
    store: Store
    hub: Hub
    fanout: Fanout
    clock: Clock
    queue_size: int = 256


class Connection:
    def __init__(self, session: Session, services: LiveServices) -> None:
        self.session = session
        self.user_id = session.user_id
        self._svc = services
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(services.queue_size)
        self._closing: Close | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Subscribe first, then read the count: nothing committed in between can be missed."""
        await self._svc.hub.attach(self)
        unread = await self._svc.store.unread_count(self.user_id)
        self._apply(self.session.open(unread))

    async def close(self) -> None:
        await self._svc.hub.detach(self)
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- inputs --------------------------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        self._apply(self.session.event(event, now=self._loop.time()))

    def resume(self) -> None:
        self._apply(self.session.resume())

    def message(self, text: str) -> None:
        self._apply(self.session.message(text))

    def shutdown(self, code: int, reason: str) -> None:
        self._apply(self.session.close(code, reason))

    # -- output --------------------------------------------------------------------------------

    async def next(self) -> Outgoing:
        """The next thing to write. Runs the session's timers while waiting."""
        while True:
            if self._closing is not None:
                return self._closing
            if not self._queue.empty():
                return self._queue.get_nowait()
            timeout = max(0.0, self.session.deadline() - self._loop.time())
            self._wake.clear()
            getter = asyncio.ensure_future(self._queue.get())
            waker = asyncio.ensure_future(self._wake.wait())
            done, pending = await asyncio.wait({getter, waker}, timeout=timeout,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if getter in done:
                return getter.result()
            if not done:
                self._apply(self.session.tick(self._loop.time()))

    # -- actions -------------------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._put(action.event)
            elif isinstance(action, Heartbeat):
                self._put(action)
            elif isinstance(action, Close):
                self._closing = action
                self._wake.set()
            elif isinstance(action, Fetch):
                self._spawn(self._fetch(action))
            elif isinstance(action, MarkRead):
                self._spawn(self._mark(action))

    def _put(self, item: Outgoing) -> None:
        if self._closing is not None:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            log.info("closing a slow client of user %s", self.user_id)
            self._apply(self.session.close(TRY_AGAIN_LATER, "client too slow; reconnect with "
                                                             "the last seq"))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, action: Fetch) -> None:
        try:
            found = await self._svc.store.notifications_after(self.user_id, action.after,
                                                              action.limit)
        except TocsinError as exc:
            log.warning("replay for user %s failed: %s", self.user_id, exc.message)
            self._apply(self.session.close(TRY_AGAIN_LATER, "store unavailable; reconnect"))
            return
        self._apply(self.session.fetched(found))

    async def _mark(self, action: MarkRead) -> None:
        store, now = self._svc.store, self._svc.clock.now()
        try:
            if action.notification_id is not None:
                change = await store.mark_read(self.user_id, action.notification_id, now)
            else:
                change = await store.mark_all_read(self.user_id, now, action.up_to)
        except NotFound:
            self._apply(self.session.operation_failed(action, "not_found",
                                                      "no such notification"))
            return
        except TocsinError as exc:
            self._apply(self.session.operation_failed(action, exc.code, exc.message))
            return
        await self._svc.fanout.read_changed(self.user_id, change)
        self._apply(self.session.operation_done(action, change.unread, len(change.ids)))
