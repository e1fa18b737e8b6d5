"""GET /v1/stream: Server-Sent Events, a thin layer over the session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from tocsin.api.openapi import errors
from tocsin.realtime.connection import Connection
from tocsin.realtime.handshake import check
from tocsin.realtime.session import Close, Writable
from tocsin.realtime.transports.sse import SseCodec
from tocsin.realtime.writer import FramedSink, SocketWriter, StreamTask
from tocsin.services import services_of

router = APIRouter(tags=["user"])

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]


class SseFraming:
    """The bytes of one `text/event-stream` body, and its end."""

    __slots__ = ("_codec",)

    def __init__(self, codec: SseCodec) -> None:
        self._codec = codec

    def message(self, item: Writable) -> Message:
        return {"type": "http.response.body", "body": self._codec.frame(item), "more_body": True}

    def last(self, close: Close) -> Message:
        return {"type": "http.response.body", "body": b"", "more_body": False}


class EventStream(Response):
    """An ASGI response that writes the connection's events until either side ends it.

    Its task waits for the client to go away; the events are written by the socket writer as
    they come. A write that does not complete within the send timeout means the client stopped
    reading; the stream is then dropped, and the client resumes with Last-Event-ID."""

    def __init__(self, connection: Connection, writer: SocketWriter, task: StreamTask,
                 opening: bytes, release: Callable[[], None]) -> None:
        super().__init__(media_type="text/event-stream")
        self.connection = connection
        self.writer = writer
        self.task = task
        self.opening = opening
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.task.bind()
        try:
            # What the connection gave while the route opened it was held until now.
            self.writer.attach(send, (
                {"type": "http.response.start", "status": 200, "headers": _HEADERS},
                {"type": "http.response.body", "body": self.opening, "more_body": True},
            ))
            while not self.task.ended:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.connection.shutdown(1000, "client went away")
                    break
        except asyncio.CancelledError:
            if not self.task.ended_here():
                raise
        finally:
            self.task.ended = True
            self.writer.abort()
            await self.connection.close()
            self._release()


@router.get(
    "/v1/stream",
    summary="My live events (Server-Sent Events)",
    response_description="text/event-stream: `notification` (with `id: <seq>`), `unread-count`, "
    "`read`, `read-all`, `resync`",
    response_class=Response,
    responses=errors(401, 403, 429, 503),
    openapi_extra={
        "security": [{"UserToken": []}],
        "parameters": [
            {"name": "since", "in": "query", "required": False, "schema": {"type": "integer"},
             "description": "resume after this seq (or send Last-Event-ID)"},
            {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "the user token, for clients that cannot set headers"},
        ],
    },
)
async def event_stream(request: Request) -> EventStream:
    """Resume with `Last-Event-ID` (sent by browsers on reconnect) or `?since=<seq>`: the
    notifications after it are replayed from the store, then the stream continues live."""
    svc = services_of(request.app)
    rt = svc.realtime
    hello = check(request.headers, request.query_params, svc.tokens,
                  svc.settings.allowed_origins, since_header="last-event-id")
    rt.capacity.admit(hello.user_id)
    task = StreamTask()
    writer = SocketWriter(None, svc.settings.stream_send_timeout_seconds, task.stop)
    connection = Connection(rt.new_session(hello), rt.live,
                            FramedSink(writer, SseFraming(rt.sse_codec)))
    try:
        await connection.open()
    except BaseException:
        await connection.close()
        rt.capacity.release(hello.user_id)
        raise
    return EventStream(connection, writer, task, rt.sse_codec.opening,
                       lambda: rt.capacity.release(hello.user_id))
