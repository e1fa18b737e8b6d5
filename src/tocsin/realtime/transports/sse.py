"""The Server-Sent Events codec (/v1/stream): `id:`, `event:` and `data:` lines per event.

Notifications carry `id: <seq>`, so a browser's EventSource resumes with `Last-Event-ID` by
itself; other events carry no id, so they never move the client's cursor. SSE clients send no
frames: what they ask goes through the HTTP API.
"""

from __future__ import annotations

from tocsin.domain.events import Event
from tocsin.realtime.session import Heartbeat, Writable

#: Written first: how soon EventSource reconnects, in milliseconds, after the stream ends.
OPENING = b"retry: 1000\n\n"
#: A comment line: it keeps proxies from cutting an idle response, and is not an event.
HEARTBEAT = b": ping\n\n"


def sse_frame(event: Event) -> bytes:
    head = f"id: {event.seq}\n" if event.seq is not None else ""
    return f"{head}event: {event.name}\ndata: ".encode() + event.data + b"\n\n"


class SseCodec:
    """Frames the bytes of one `text/event-stream` body."""

    __slots__ = ()

    opening = OPENING

    def frame(self, item: Writable) -> bytes:
        if isinstance(item, Event):
            return item.framed(sse_frame)
        if isinstance(item, Heartbeat):
            return HEARTBEAT
        # A reply answers a client frame, and SSE clients send none; framed as an event.
        return sse_frame(item.event)
