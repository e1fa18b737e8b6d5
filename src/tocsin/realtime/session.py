"""The per-connection protocol, with no I/O: fed events, client operations and time, it
answers with actions.

WebSocket, SSE (and later Socket.IO) are thin layers that move bytes and carry out the actions;
everything that decides *what* a client receives lives here and is tested without a socket. A
client's frames reach it already parsed, as operations (`tocsin.realtime.operations`): parsing
is each transport's codec's job.

Exactly-once, in-order delivery of notifications, whatever the timing:

1. The connection subscribes to the user's live events *before* it reads anything from the
   store, and the session buffers those events while it is not yet live.
2. `open()` gets the user's count and newest seq. With a cursor (`since`), the session asks the
   store for everything after it (`Fetch`), then goes live and releases the buffer.
3. Live, it delivers notification `last + 1` at once; a duplicate (seq <= last) is dropped; a
   notification further ahead is held while the missing ones are awaited (another publisher's
   event may still be on its way). If they have not come within `gap_timeout`, the session
   fetches them from the store, which has them, since they committed first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tocsin.domain.events import RESYNC, Event, notification_event, unread_event
from tocsin.domain.models import Notification, UnreadCount
from tocsin.realtime.operations import (
    Invalid,
    MarkAllRead,
    MarkRead,
    Op,
    Ping,
    ReadOp,
    Ref,
    Violation,
)

# WebSocket close codes, used by every transport to say why a stream ended.
POLICY_VIOLATION = 1008
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011  # the server failed; reconnect with the last seq, with backoff
TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class Send:
    """Write `event` (one shared by every connection that receives it)."""

    event: Event


@dataclass(frozen=True, slots=True)
class Reply:
    """Write `event` (`ack`, `error` or `pong`) in answer to the operation whose `ref` it
    carries, for the transport to route; a transport without reply ids writes it as an event."""

    event: Event
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """Load the user's notifications with seq > `after` (at most `limit`), then call
    `Session.fetched` with them; with `recount`, read the user's count after them and pass it
    along (`Session.fetched(found, unread)`)."""

    after: int
    limit: int
    recount: bool = False


@dataclass(frozen=True, slots=True)
class Mark:
    """Carry out the read operation `op` against the store, broadcast the change to the user's
    connections, then call `Session.operation_done` (or `operation_failed`) with `op`."""

    op: ReadOp


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Send the transport's keep-alive (an SSE comment line; WebSocket pings are the server's)."""


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = Send | Reply | Fetch | Mark | Heartbeat | Close
#: What a connection hands its transport to write (besides `Close`, which ends the stream).
Writable = Event | Reply | Heartbeat


@dataclass(slots=True)
class Limits:
    max_replay: int = 1000  # a gap larger than this is not replayed: the client resyncs
    gap_timeout: float = 1.0  # how long to wait for a missing seq before asking the store
    heartbeat: float = 15.0
    max_buffer: int = 1000  # live events held while replaying; beyond, the client is too slow


@dataclass(slots=True)
class Session:
    """One connection's state. Methods return the actions to carry out, in order."""

    user_id: str
    since: int | None
    limits: Limits
    now: float
    expires_at: float | None = None  # the token's `exp`, on the same clock as `now`
    last: int = 0  # the newest seq this client has been given (or already had)
    live: bool = False
    closed: bool = False
    _buffer: list[Event] = field(default_factory=list)
    _held: dict[int, Event] = field(default_factory=dict)
    _gap_deadline: float | None = None
    _fetching: bool = False
    _fetch_limit: int = 0
    _next_heartbeat: float = 0.0

    def __post_init__(self) -> None:
        self._next_heartbeat = self.now + self.limits.heartbeat

    # -- opening -------------------------------------------------------------------------------

    def open(self, unread: UnreadCount) -> list[Action]:
        """The connection is subscribed and has read the user's count; start the stream."""
        actions: list[Action] = [Send(unread_event(unread))]
        since = self.since
        if since is None:
            self.last = unread.seq  # no cursor: live events only
            return actions + self._go_live()
        if since > unread.seq or unread.seq - since > self.limits.max_replay:
            # A cursor from the future (a reset database) or too far behind: start afresh.
            self.last = unread.seq
            return [*actions, Send(RESYNC), *self._go_live()]
        self.last = since
        if unread.seq == since:
            return actions + self._go_live()
        return [*actions, self._fetch(after=since, limit=unread.seq - since)]

    def _go_live(self) -> list[Action]:
        self.live = True
        buffered, self._buffer = self._buffer, []
        actions: list[Action] = []
        for event in buffered:
            actions += self._deliver(event)
        return actions

    # -- events --------------------------------------------------------------------------------

    def event(self, event: Event, now: float | None = None) -> list[Action]:
        """A live event for this user arrived from the bus."""
        if now is not None:
            self.now = now
        if self.closed:
            return []
        if not self.live:
            if len(self._buffer) >= self.limits.max_buffer:
                return self._close(TRY_AGAIN_LATER, "too many events while catching up")
            self._buffer.append(event)
            return []
        return self._deliver(event)

    def _deliver(self, event: Event) -> list[Action]:
        seq = event.seq
        if seq is None:
            return [Send(event)]
        if seq <= self.last or seq in self._held:
            return []
        if seq == self.last + 1:
            self.last = seq
            return [Send(event), *self._release_held()]
        if len(self._held) >= self.limits.max_buffer:
            return self._close(TRY_AGAIN_LATER, "too many events out of order")
        self._held[seq] = event
        if self._gap_deadline is None:
            self._gap_deadline = self.now + self.limits.gap_timeout
        return []

    def _release_held(self) -> list[Action]:
        actions: list[Action] = []
        while self.last + 1 in self._held:
            self.last += 1
            actions.append(Send(self._held.pop(self.last)))
        # drop anything held that is now behind us (it was fetched meanwhile)
        for seq in [s for s in self._held if s <= self.last]:
            del self._held[seq]
        self._gap_deadline = None if not self._held else self._gap_deadline
        return actions

    def _fetch(self, after: int, limit: int, recount: bool = False) -> Fetch:
        self._fetching = True
        self._fetch_limit = limit
        return Fetch(after=after, limit=limit, recount=recount)

    def fetched(self, notifications: list[Notification], unread: UnreadCount | None = None
                ) -> list[Action]:
        """The store's answer to `Fetch`, oldest first (and the count, when asked for)."""
        self._fetching = False
        if self.closed:
            return []
        actions: list[Action] = []
        for item in notifications:
            # The store is the truth: a seq it does not return is gone for good (a grouped
            # item moved to a newer seq, an expired or purged notification), not late.
            if item.seq is not None and item.seq > self.last:
                self.last = item.seq
                actions.append(Send(notification_event(item)))
        if unread is not None:
            if len(notifications) >= self._fetch_limit and unread.seq > self.last:
                # More was missed than one replay holds: the client starts afresh.
                self.last = unread.seq
                actions.append(Send(RESYNC))
            actions.append(Send(unread_event(unread)))
        actions += self._release_held()
        if self._held:  # still a gap (should not happen: seqs commit in order); wait again
            self._gap_deadline = self.now + self.limits.gap_timeout
        if not self.live:
            actions += self._go_live()
        return actions

    # -- time ----------------------------------------------------------------------------------

    def deadline(self) -> float:
        """When `tick` should next be called, at the latest."""
        times = [self._next_heartbeat]
        if self._gap_deadline is not None:
            times.append(self._gap_deadline)
        if self.expires_at is not None:
            times.append(self.expires_at)
        return min(times)

    def tick(self, now: float) -> list[Action]:
        self.now = now
        if self.closed:
            return []
        if self.expires_at is not None and now >= self.expires_at:
            return self._close(POLICY_VIOLATION, "token expired")
        actions: list[Action] = []
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.limits.heartbeat
            actions.append(Heartbeat())
        if self._gap_deadline is not None and now >= self._gap_deadline and not self._fetching:
            self._gap_deadline = None
            held_top = max(self._held, default=self.last)
            actions.append(self._fetch(after=self.last, limit=max(held_top - self.last, 1)))
        return actions

    def resume(self) -> list[Action]:
        """Events may have been lost upstream (the bus reconnected, or could not carry them):
        catch up from the store, notifications and the count alike."""
        if self.closed or not self.live or self._fetching:
            return []
        return [self._fetch(after=self.last, limit=self.limits.max_replay, recount=True)]

    # -- client operations ---------------------------------------------------------------------

    def op(self, op: Op) -> list[Action]:
        """An operation from the client, as its transport's codec parsed it."""
        if self.closed:
            return []
        match op:
            case Ping():
                return [Reply(Event.of("pong", {}), op.ref)]
            case MarkRead() | MarkAllRead():
                return [Mark(op)]
            case Invalid():
                return [_error(op.code, op.message, op.op, op.ref)]
            case Violation():
                return self._close(op.code, op.reason)

    def operation_done(self, op: ReadOp, unread: UnreadCount, changed: int) -> list[Action]:
        payload: dict[str, object] = {
            "op": op.name, "changed": changed, "unread_count": unread.count, "seq": unread.seq,
            "version": unread.version,
        }
        if isinstance(op, MarkRead):
            payload["id"] = str(op.id)
        return [Reply(Event.of("ack", payload), op.ref)]

    def operation_failed(self, op: ReadOp, code: str, message: str) -> list[Action]:
        return [_error(code, message, op.name, op.ref)]

    # -- closing -------------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> list[Action]:
        """End the stream from outside the protocol (a slow client, a shutting-down node)."""
        if self.closed:
            return []
        return self._close(code, reason)

    def _close(self, code: int, reason: str) -> list[Action]:
        self.closed = True
        return [Close(code, reason)]


def _error(code: str, message: str, op: str | None, ref: Ref) -> Reply:
    payload: dict[str, str] = {"code": code, "message": message}
    if op is not None:
        payload["op"] = op
    return Reply(Event.of("error", payload), ref)


__all__ = [
    "Action", "Close", "Fetch", "Heartbeat", "Limits", "Mark", "Reply", "Send", "Session",
    "Writable", "unread_event",
]
