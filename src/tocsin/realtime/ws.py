"""GET /v1/ws: the WebSocket transport, a thin layer over the session.

Served by an ASGI layer in front of the router (`DirectWebSocket`), not as a FastAPI route: a
stream lives for hours, and every layer between the server and the endpoint keeps its frame,
its exit stack and its exception-handling state alive for as long (measured with tracemalloc:
some 9 KB of every idle stream, and the routing work of every handshake). WebSocket routes
have no place in the OpenAPI description, so nothing is lost by it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tocsin.domain.errors import TocsinError
from tocsin.realtime.connection import Connection
from tocsin.realtime.handshake import TooManyConnections, check
from tocsin.realtime.session import INTERNAL_ERROR, POLICY_VIOLATION, TRY_AGAIN_LATER, Close
from tocsin.realtime.transports.websocket import WebSocketCodec
from tocsin.services import services_of

log = logging.getLogger("tocsin.realtime")

PATH = "/v1/ws"


class DirectWebSocket:
    """ASGI middleware: a WebSocket to /v1/ws goes straight to its endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            await websocket_stream(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)


async def websocket_stream(websocket: WebSocket) -> None:
    svc = services_of(websocket.app)
    rt = svc.realtime
    try:
        hello = check(websocket.headers, websocket.query_params, svc.tokens,
                      svc.settings.allowed_origins)
        rt.capacity.admit(hello.user_id)
    except TooManyConnections:
        await websocket.close(code=TRY_AGAIN_LATER)  # before accept: refused, no event sent
        return
    except TocsinError:
        await websocket.close(code=POLICY_VIOLATION)
        return
    await websocket.accept()
    connection = Connection(rt.new_session(hello), rt.live)
    codec = rt.ws_codec
    reader = asyncio.create_task(_read(websocket, connection, codec))
    try:
        await connection.open()
        while True:
            item = await connection.next()
            if isinstance(item, Close):
                if websocket.application_state == WebSocketState.CONNECTED:
                    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                        await websocket.close(code=item.code, reason=item.reason)
                return
            text = codec.frame(item)
            if text is not None:
                # A send that cannot complete means the peer stopped reading: drop it.
                await asyncio.wait_for(
                    websocket.send({"type": "websocket.send", "text": text}),
                    svc.settings.stream_send_timeout_seconds,
                )
    except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
        return
    except TocsinError as exc:  # the store failed while opening
        log.warning("stream for user %s ended: %s", hello.user_id, exc.message)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await websocket.close(code=TRY_AGAIN_LATER, reason=exc.code)
    except Exception:
        log.exception("stream for user %s failed", hello.user_id)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await websocket.close(code=INTERNAL_ERROR, reason="internal_error")
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await connection.close()
        rt.capacity.release(hello.user_id)


async def _read(websocket: WebSocket, connection: Connection, codec: WebSocketCodec) -> None:
    while not connection.closing:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            connection.shutdown(1000, "client went away")
            return
        frame: str | bytes | None = message.get("text")
        if frame is None:
            frame = message.get("bytes")
        if frame is not None:
            connection.op(codec.parse(frame))
            await connection.room()
