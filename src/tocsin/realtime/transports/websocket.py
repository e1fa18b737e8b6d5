"""The WebSocket codec (/v1/ws): every event is a text frame `{"event": NAME, "data": {...}}`,
and every client frame a JSON object naming its `op`.

Client frames: `{"op": "ping"}`, `{"op": "mark-as-read", "id": "<uuid>"}`,
`{"op": "mark-all-as-read", "seq"?: <int >= 0>}`. A text frame that is not one of these is
answered with an `error` event (`bad_frame`, or `unknown_op` for an op no one knows); a binary
frame ends the stream with 1003 and a frame over the size limit with 1009.
"""

from __future__ import annotations

import uuid

import orjson

from tocsin.domain.events import Event
from tocsin.realtime.operations import Invalid, MarkAllRead, MarkRead, Op, Ping, Violation
from tocsin.realtime.session import MESSAGE_TOO_BIG, UNSUPPORTED_DATA, Reply, Writable


def ws_text(event: Event) -> str:
    """The event's text frame. The data is spliced in as it was encoded, never re-encoded."""
    return f'{{"event":"{event.name}","data":{event.data.decode()}}}'


class WebSocketCodec:
    """Text frames of JSON. Keep-alive is the server's WebSocket ping (uvicorn's), not a frame.
    Replies are plain events (`ack`, `error`, `pong`): the protocol has no reply ids."""

    __slots__ = ("max_frame",)

    def __init__(self, max_frame: int = 4096) -> None:
        # The server refuses bigger frames in bytes before they reach the app (uvicorn's
        # ws_max_size); this holds wherever the app runs, counted in characters.
        self.max_frame = max_frame

    def frame(self, item: Writable) -> str | None:
        if isinstance(item, Event):
            return item.framed(ws_text)
        if isinstance(item, Reply):
            return ws_text(item.event)  # one connection's own: nothing to share
        return None

    def parse(self, frame: str | bytes) -> Op:
        if isinstance(frame, bytes):
            return Violation(UNSUPPORTED_DATA, "frames must be text (JSON)")
        if len(frame) > self.max_frame:
            return Violation(MESSAGE_TOO_BIG, f"frames are limited to {self.max_frame}")
        try:
            body = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return Invalid("bad_frame", "frames must be JSON objects")
        if not isinstance(body, dict) or not isinstance(body.get("op"), str):
            return Invalid("bad_frame", 'frames must be objects with an "op"')
        op: str = body["op"]
        if op == Ping.name:
            return Ping()
        if op == MarkRead.name:
            raw = body.get("id")
            try:
                notification_id = uuid.UUID(raw) if isinstance(raw, str) else None
            except ValueError:
                notification_id = None
            if notification_id is None:
                return Invalid("bad_frame", '"mark-as-read" needs the notification "id"', op)
            return MarkRead(notification_id)
        if op == MarkAllRead.name:
            seq = body.get("seq")
            if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)
                                    or seq < 0):
                return Invalid("bad_frame", '"seq" must be a non-negative integer', op)
            return MarkAllRead(seq)
        return Invalid("unknown_op", f"unknown op {op!r}; expected ping, mark-as-read or "
                                     "mark-all-as-read", op)
