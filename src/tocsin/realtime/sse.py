"""GET /v1/stream: Server-Sent Events, a thin layer over the session."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tocsin.api.openapi import errors
from tocsin.realtime.connection import Connection
from tocsin.realtime.handshake import check
from tocsin.realtime.session import Close
from tocsin.realtime.transports.sse import SseCodec
from tocsin.services import services_of

router = APIRouter(tags=["user"])

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]


class EventStream(Response):
    """An ASGI response that writes the connection's events until either side ends it.

    A write that does not complete within the send timeout means the client stopped reading;
    the stream is then dropped, and the client resumes with Last-Event-ID."""

    def __init__(self, connection: Connection, codec: SseCodec, send_timeout: float,
                 release: Callable[[], None]) -> None:
        super().__init__(media_type="text/event-stream")
        self.connection = connection
        self.codec = codec
        self.send_timeout = send_timeout
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await self._write(send, self.codec.opening)
            while True:
                item = await self.connection.next()
                if isinstance(item, Close):
                    break
                await self._write(send, self.codec.frame(item))
            with contextlib.suppress(OSError, RuntimeError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (TimeoutError, OSError, RuntimeError):
            pass
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self.connection.close()
            self._release()

    async def _write(self, send: Send, body: bytes) -> None:
        await asyncio.wait_for(
            send({"type": "http.response.body", "body": body, "more_body": True}),
            self.send_timeout,
        )

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.connection.shutdown(1000, "client went away")
                return


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
    connection = Connection(rt.new_session(hello), rt.live)
    try:
        await connection.open()
    except BaseException:
        await connection.close()
        rt.capacity.release(hello.user_id)
        raise
    return EventStream(connection, rt.sse_codec, svc.settings.stream_send_timeout_seconds,
                       lambda: rt.capacity.release(hello.user_id))
