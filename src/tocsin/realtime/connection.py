"""One client connection: carries out its Session's actions, whatever the transport.

The hub hands it events (`deliver`); it writes what the session sends to its transport's
`Sink` at once, in the caller's turn (the sink frames it and writes it to the socket, with no
task of its own while the socket keeps up: see `realtime/writer.py`); a transport feeds it the
client's operations (`op`), parsed by its codec. The session's timers (token expiry, a gap's
wait, heartbeats) run on one timer handle, not on a task that waits.

Live events given to a sink that cannot write them are held against a bound: a client that
cannot keep up is closed with 1013 rather than growing this node's memory, and it recovers by
seq when it returns. What the connection sends of its own accord (the opening count, a replay
from the store) is not held against that bound: it is bounded already (by `max_replay` and the
session's buffer), and counting it would close every client whose replay is longer than the
bound, again on every reconnect, so that it could never catch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from tocsin.clock import Clock
from tocsin.domain.errors import NotFound, TocsinError
from tocsin.domain.events import Event
from tocsin.pipeline.reads import Reads
from tocsin.realtime.hub import Hub
from tocsin.realtime.operations import MarkRead, Op, ReadOp
from tocsin.realtime.session import (
    INTERNAL_ERROR,
    TRY_AGAIN_LATER,
    Action,
    Close,
    Fetch,
    Heartbeat,
    Mark,
    Reply,
    Send,
    Session,
    Writable,
)
from tocsin.store.base import Store

log = logging.getLogger("tocsin.realtime")

#: Operations of one connection waiting their turn before its frames stop being read.
MAX_PENDING_OPS = 16


class Sink(Protocol):
    """Where a connection's output goes: one transport's framing over one socket.

    `write` and `end` never block: what cannot be written at once waits, in order, and is
    counted in `waiting` when `counted`. `end` goes ahead of what still waits, which is
    dropped (the client resumes by seq); after it, nothing more is written."""

    @property
    def waiting(self) -> int:
        """Counted items given and not written yet."""

    def write(self, item: Writable, counted: bool) -> None: ...

    def end(self, close: Close) -> None: ...


@dataclass(slots=True)
class LiveServices:
    store: Store
    hub: Hub
    reads: Reads
    clock: Clock
    queue_size: int = 256


class Connection:
    def __init__(self, session: Session, services: LiveServices, sink: Sink) -> None:
        self.session = session
        self.user_id = session.user_id
        self._svc = services
        self._sink = sink
        self._closing: Close | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clock = services.clock  # the session's timers run on it: expiry, gaps, heartbeats
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # the session deadline `_timer` was set for
        # The client's operations run one at a time, in the order sent: a client firing frames
        # as fast as it can write them holds one database transaction at a time, not one each.
        # Made on the first operation: most streams never send one, and every idle stream
        # would hold a queue and an event for nothing.
        self._ops: asyncio.Queue[ReadOp] | None = None
        self._op_runner: asyncio.Task[None] | None = None
        self._ops_room: asyncio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Subscribe first, then read the count: nothing committed in between can be missed."""
        await self._svc.hub.attach(self)
        unread = await self._svc.store.unread_count(self.user_id)
        self._apply(self.session.open(unread), counted=False)

    async def close(self) -> None:
        self._stop_timer()
        await self._svc.hub.detach(self)
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- inputs --------------------------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        self._apply(self.session.event(event, now=self._clock.monotonic()))

    def resume(self) -> None:
        self._apply(self.session.resume())

    def op(self, op: Op) -> None:
        """An operation of the client's, parsed from its frame by the transport's codec."""
        self._apply(self.session.op(op))

    @property
    def closing(self) -> bool:
        """The stream is ending: nothing the client sends from now on is acted upon."""
        return self.session.closed

    async def room(self) -> None:
        """Returns once the client may send its next frame: a transport awaits this between
        frames, so a client whose operations pile up is slowed down by TCP itself."""
        if self._ops_room is not None:
            await self._ops_room.wait()

    def shutdown(self, code: int, reason: str) -> None:
        self._apply(self.session.close(code, reason))

    def poke(self) -> None:
        """Look at the clock again now: for a clock that moves by hand (tests), whose jumps no
        timer can see coming."""
        self._stop_timer()
        self._on_timer()

    # -- time ----------------------------------------------------------------------------------

    def _arm(self) -> None:
        """Have the timer fire by the session's deadline. A timer set for earlier is left alone
        (it finds the deadline moved and sets itself again): most events move no deadline,
        and a timer made per event would cost more than the event."""
        deadline = self.session.deadline()
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        delay = max(0.0, deadline - self._clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)
        self._timer_at = deadline

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._closing is not None:
            return
        now = self._clock.monotonic()
        if self.session.deadline() <= now:
            self._apply(self.session.tick(now))
        else:
            self._arm()

    # -- actions -------------------------------------------------------------------------------

    def _apply(self, actions: list[Action], counted: bool = True) -> None:
        """Carry out the session's actions. `counted`: what they send is held against the
        bound (live traffic), or not (the connection's own opening and replays)."""
        for action in actions:
            if isinstance(action, Send):
                self._put(action.event, counted)
            elif isinstance(action, Reply | Heartbeat):
                self._put(action, counted)
            elif isinstance(action, Close):
                self._end(action)
            elif isinstance(action, Fetch):
                self._spawn(self._fetch(action))
            elif isinstance(action, Mark):
                self._queue_op(action.op)
        if self._closing is None:
            self._arm()

    def _put(self, item: Writable, counted: bool) -> None:
        if self._closing is not None:
            return
        if counted and self._sink.waiting >= self._svc.queue_size:
            log.info("closing a slow client of user %s", self.user_id)
            self._apply(self.session.close(TRY_AGAIN_LATER, "client too slow; reconnect with "
                                                             "the last seq"))
            return
        self._sink.write(item, counted)

    def _end(self, close: Close) -> None:
        if self._closing is not None:
            return
        self._closing = close
        self._stop_timer()
        self._sink.end(close)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _queue_op(self, op: ReadOp) -> None:
        if self._ops is None or self._ops_room is None:
            self._ops, self._ops_room = asyncio.Queue(), asyncio.Event()
            self._ops_room.set()
        self._ops.put_nowait(op)
        if self._ops.qsize() >= MAX_PENDING_OPS:
            self._ops_room.clear()
        if self._op_runner is None:
            self._op_runner = self._spawn(self._run_ops(self._ops, self._ops_room))

    async def _run_ops(self, ops: asyncio.Queue[ReadOp], room: asyncio.Event) -> None:
        while True:
            op = await ops.get()
            try:
                await self._mark(op)
            except Exception:  # one failed operation must not leave the rest unanswered
                log.exception("operation %r of user %s failed", op, self.user_id)
                self._apply(self.session.operation_failed(op, "internal_error",
                                                          "the operation failed; try again"))
            if ops.qsize() < MAX_PENDING_OPS:
                room.set()

    async def _fetch(self, action: Fetch) -> None:
        # Whatever goes wrong, the stream ends with a close code the client acts on (reconnect
        # with its last seq): a failed replay must never leave it open and silent.
        try:
            store = self._svc.store
            found = await store.notifications_after(self.user_id, action.after, action.limit)
            # Read after the notifications, so the count is valid at least at their seqs.
            unread = await store.unread_count(self.user_id) if action.recount else None
            self._apply(self.session.fetched(found, unread), counted=False)
        except TocsinError as exc:
            log.warning("replay for user %s failed: %s", self.user_id, exc.message)
            self._apply(self.session.close(TRY_AGAIN_LATER, "store unavailable; reconnect"))
        except Exception:
            log.exception("replay for user %s failed", self.user_id)
            self._apply(self.session.close(INTERNAL_ERROR, "replay failed; reconnect later"))

    async def _mark(self, op: ReadOp) -> None:
        reads = self._svc.reads
        try:
            if isinstance(op, MarkRead):
                change = await reads.mark_read(self.user_id, op.id)
            else:
                change = await reads.mark_all_read(self.user_id, op.seq)
        except NotFound:
            self._apply(self.session.operation_failed(op, "not_found", "no such notification"))
            return
        except TocsinError as exc:
            self._apply(self.session.operation_failed(op, exc.code, exc.message))
            return
        self._apply(self.session.operation_done(op, change.unread, len(change.ids)))
