"""GET /v1/ws: the WebSocket transport, a thin layer over the session.

Served ahead of the middleware and the router (`TocsinApp` hands it the scope), not as a
FastAPI route: a stream lives for hours, and every layer between the server and the endpoint
keeps its frame, its exit stack and its exception-handling state alive for as long (measured
with tracemalloc: some 9 KB of every idle stream, and the routing work of every handshake).
WebSocket routes have no place in the OpenAPI description, so nothing is lost by it.

A stream has one task, which reads the client's frames. What the stream sends is written in
the turn of whoever gives it (the hub's delivery, a timer, a replay), through the socket
writer, which needs a task of its own only while the client is not keeping up."""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import Headers, QueryParams
from starlette.types import Message, Receive, Scope, Send

from tocsin.domain.errors import TocsinError
from tocsin.realtime.connection import Connection
from tocsin.realtime.handshake import TooManyConnections, check
from tocsin.realtime.session import (
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    Close,
    Writable,
)
from tocsin.realtime.transports.websocket import WebSocketCodec
from tocsin.realtime.writer import FramedSink, SocketWriter, StreamTask
from tocsin.services import Services

log = logging.getLogger("tocsin.realtime")

PATH = "/v1/ws"


class WebSocketFraming:
    """Text frames, and the close frame."""

    __slots__ = ("_codec",)

    def __init__(self, codec: WebSocketCodec) -> None:
        self._codec = codec

    def message(self, item: Writable) -> Message | None:
        text = self._codec.frame(item)
        # None for a heartbeat: WebSocket's keep-alive is the server's ping, not a frame.
        return None if text is None else {"type": "websocket.send", "text": text}

    def last(self, close: Close) -> Message:
        return {"type": "websocket.close", "code": close.code, "reason": close.reason}


async def websocket_stream(svc: Services, scope: Scope, receive: Receive, send: Send) -> None:
    rt = svc.realtime
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        hello = check(Headers(scope=scope), QueryParams(scope["query_string"]), svc.tokens,
                      svc.settings.allowed_origins)
        rt.capacity.admit(hello.user_id)
    except TooManyConnections:
        await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})  # refused, no event
        return
    except TocsinError:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return
    try:
        await send({"type": "websocket.accept"})
    except OSError:
        rt.capacity.release(hello.user_id)
        return
    reading = StreamTask()
    reading.bind()
    writer = SocketWriter(send, svc.settings.stream_send_timeout_seconds, reading.stop)
    connection = Connection(rt.new_session(hello), rt.live,
                            FramedSink(writer, WebSocketFraming(rt.ws_codec)))
    try:
        await connection.open()
        await _read(receive, connection, rt.ws_codec, reading)
    except asyncio.CancelledError:
        if not reading.ended_here():
            raise  # cancelled from outside: not the stream's own ending
    except TocsinError as exc:  # the store failed while opening
        log.warning("stream for user %s ended: %s", hello.user_id, exc.message)
        connection.shutdown(TRY_AGAIN_LATER, exc.code)
    except OSError:
        pass
    except Exception:
        log.exception("stream for user %s failed", hello.user_id)
        connection.shutdown(INTERNAL_ERROR, "internal_error")
    finally:
        reading.ended = True  # from here on, nothing cancels this task
        if connection.closing:
            await writer.drained()  # a close behind a slow client: bounded by its timeouts
        writer.abort()
        await connection.close()
        rt.capacity.release(hello.user_id)


async def _read(receive: Receive, connection: Connection, codec: WebSocketCodec,
                reading: StreamTask) -> None:
    while not reading.ended:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            connection.shutdown(1000, "client went away")
            return
        frame: str | bytes | None = message.get("text")
        if frame is None:
            frame = message.get("bytes")
        if frame is not None:
            connection.op(codec.parse(frame))
            await connection.room()

