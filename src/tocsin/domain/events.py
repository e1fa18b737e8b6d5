"""Stream events: serialised once, framed once per transport, shared by every connection.

Names and shapes are the same on every transport: `notification` (the notification as the list
returns it, with its `seq`), `unread-count` `{"count", "seq"}`, `read` `{"ids"}`, `read-all`
`{"seq"}`, `resync` `{"recovered": false}`, and per connection `ack`, `error`, `pong`. How an
event looks on the wire is each transport's codec's business (`tocsin.realtime.transports`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from tocsin.domain.encoding import notification_json
from tocsin.domain.models import Notification, ReadChange, UnreadCount

F = TypeVar("F")


class Event:
    """One event. `data` is its JSON object, encoded once. An event is immutable once built, so
    what a transport makes of it can be made once and shared: see `framed`."""

    __slots__ = ("_frames", "data", "name", "seq")

    def __init__(self, name: str, data: bytes, seq: int | None = None) -> None:
        self.name = name
        self.data = data
        self.seq = seq  # set on notifications only: their position in the user's sequence
        # A fan-out hands one event to every connection of its user: each transport frames it
        # on first use, and every other connection on that transport writes the same object.
        self._frames: dict[Callable[[Event], Any], Any] | None = None

    @classmethod
    def of(cls, name: str, payload: dict[str, Any], seq: int | None = None) -> Event:
        return cls(name, compact(orjson.dumps(payload)), seq)

    def framed(self, framing: Callable[[Event], F]) -> F:
        """`framing(self)`, computed on the first call and returned as the same object on every
        later call with the same `framing`. The cache is keyed by the function itself: pass a
        module-level function (a lambda made anew on every call would never hit)."""
        # Called once per event for every connection it reaches: a hit is one dict lookup.
        frames = self._frames
        if frames is not None:
            found: F | None = frames.get(framing)
            if found is not None:
                return found
        else:
            frames = self._frames = {}
        frame = frames[framing] = framing(self)
        return frame

    def encode(self) -> bytes:
        """For a bus between processes: `name seq\\n` then the JSON."""
        seq = "" if self.seq is None else str(self.seq)
        return f"{self.name} {seq}\n".encode() + self.data

    @classmethod
    def decode(cls, raw: bytes) -> Event:
        head, _, data = raw.partition(b"\n")
        name, _, seq = head.decode().partition(" ")
        return cls(name, data, int(seq) if seq else None)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, seq={self.seq})"


def compact(dumped: bytes) -> bytes:
    """A copy of orjson's output that holds only its length: the bytes orjson returns keep
    the 4 KB it allocated to write into (measured: 4.0 KB of RSS per small result, 77 bytes
    for the copy), and events live as long as a stream keeps them (every idle stream keeps its
    opening count)."""
    return memoryview(dumped).tobytes()


def notification_event(notification: Notification) -> Event:
    return Event("notification", compact(notification_json(notification)), notification.seq)


def unread_event(unread: UnreadCount) -> Event:
    return Event.of("unread-count", unread.to_json())


def read_events(change: ReadChange) -> list[Event]:
    """What every connection of the user hears after a read change: which items, then the count."""
    if change.up_to is not None:
        first = Event.of("read-all", {"seq": change.up_to})
    else:
        first = Event.of("read", {"ids": [str(i) for i in change.ids]})
    return [first, unread_event(change.unread)]


RESYNC = Event.of("resync", {"recovered": False})
