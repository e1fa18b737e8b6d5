"""Stream events: serialised once, framed once per transport, shared by every connection.

Names and shapes are the same on every transport: `notification` (the notification as the list
returns it, with its `seq`), `unread-count` `{"count", "seq"}`, `read` `{"ids"}`, `read-all`
`{"seq"}`, `resync` `{"recovered": false}`, and per connection `ack`, `error`, `pong`.
"""

from __future__ import annotations

from typing import Any

import orjson

from tocsin.domain.encoding import notification_json
from tocsin.domain.models import Notification, ReadChange, UnreadCount


class Event:
    """One event. `data` is its JSON object, encoded once; the WebSocket text and the SSE frame
    are built on first use and then reused for every connection that receives the event."""

    __slots__ = ("_sse", "_ws", "data", "name", "seq")

    def __init__(self, name: str, data: bytes, seq: int | None = None) -> None:
        self.name = name
        self.data = data
        self.seq = seq  # set on notifications only: their position in the user's sequence
        self._ws: str | None = None
        self._sse: bytes | None = None

    @classmethod
    def of(cls, name: str, payload: dict[str, Any], seq: int | None = None) -> Event:
        return cls(name, orjson.dumps(payload), seq)

    def ws_text(self) -> str:
        if self._ws is None:
            self._ws = f'{{"event":"{self.name}","data":{self.data.decode()}}}'
        return self._ws

    def sse_frame(self) -> bytes:
        if self._sse is None:
            head = f"id: {self.seq}\n" if self.seq is not None else ""
            self._sse = f"{head}event: {self.name}\ndata: ".encode() + self.data + b"\n\n"
        return self._sse

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


def notification_event(notification: Notification) -> Event:
    return Event("notification", notification_json(notification), notification.seq)


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
