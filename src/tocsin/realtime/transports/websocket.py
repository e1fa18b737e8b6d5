"""The WebSocket codec (/v1/ws): every event is a text frame `{"event": NAME, "data": {...}}`."""

from __future__ import annotations

from tocsin.domain.events import Event
from tocsin.realtime.session import Heartbeat


def ws_text(event: Event) -> str:
    """The event's text frame. The data is spliced in as it was encoded, never re-encoded."""
    return f'{{"event":"{event.name}","data":{event.data.decode()}}}'


class WebSocketCodec:
    """Text frames of JSON. Keep-alive is the server's WebSocket ping (uvicorn's), not a frame."""

    __slots__ = ()

    def frame(self, item: Event | Heartbeat) -> str | None:
        if isinstance(item, Event):
            return item.framed(ws_text)
        return None
