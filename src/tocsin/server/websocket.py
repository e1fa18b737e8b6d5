"""uvicorn's wsproto WebSocket protocol, holding less for each of the hours a stream is idle,
and writing a stream's frames in one system call per turn of the loop.

Measured with tracemalloc over 2,000 idle streams (docs/benchmarks.md), two parts of every
stream were dead weight once it was open:

- the queue of incoming ASGI messages: an `asyncio.Queue` is three deques, about 2.3 KB,
  for what is almost always nothing or one message waiting for one reader. `Inbox` is a list
  and at most one waiter;
- wsproto's opening handshake (an h11 connection, its buffers and state, a deque of events):
  about 3 KB, kept by `WSConnection` for good although the handshake is over once the accept
  is written. It is let go then; the connection object that speaks WebSocket is kept.

And profiled under load (py-spy, batched publishes to 1,000 streams), a fifth of the server's
CPU went to `WSProtocol.send`, most of it in one `send()` system call per frame: a notification
is two frames (`notification`, then `unread-count`) and a fan-out writes both to every stream
of the user in the same turn. Data frames are framed here (a server's frames are unmasked,
and with no extension negotiated a whole message is one frame: wsproto would produce the same
bytes) and queued; the queue is written once, at the end of the turn, in one call. Everything
else (the handshake, pings and pongs, the close, and every frame while the transport is paused
or once the connection is closing) goes through uvicorn's own path, after what is queued.

Behaviour is uvicorn's; only these containers, and when the bytes reach the socket, differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from wsproto.connection import ConnectionState


class Inbox:
    """The part of `asyncio.Queue` uvicorn's protocol uses (`put_nowait`, `get`, `empty`),
    for one reader: messages in order, the reader woken by the first."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class _HandshakeDone:
    """What stands in for wsproto's handshake once it is over: it has no more events."""

    __slots__ = ()

    def events(self) -> Iterator[Any]:
        return iter(())


_DONE = _HandshakeDone()


def frame_header(opcode: int, length: int) -> bytes:
    """RFC 6455 section 5.2, server to client: FIN set, no RSV bits, no mask."""
    first = 0x80 | opcode
    if length <= 125:
        return bytes((first, length))
    if length <= 0xFFFF:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


TEXT, BINARY = 0x1, 0x2


class LeanWSProtocol(WSProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        # Frames framed this turn, not yet written; None when there are none (most streams,
        # most of the time: no list held while idle).
        self._pending: list[bytes] | None = None
        # With permessage-deflate possible, frames are wsproto's to make.
        self._frames_here = not self.config.ws_per_message_deflate

    def start_keepalive(self) -> None:
        # Called once, right after the accept is written: the handshake is over.
        super().start_keepalive()
        conn = self.conn
        # Only once the accept is written (`connection` is set) and every event the handshake
        # parsed has been taken: then nothing reads the handshake again but `events()`.
        handshake = conn.handshake
        if conn.connection is not None and not getattr(handshake, "_events", None):
            conn.handshake = _DONE  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and self._open_for_data():
            text = message.get("text")
            if text is not None:
                payload = text.encode()
                header = frame_header(TEXT, len(payload))
            else:
                payload = bytes(message["bytes"])
                header = frame_header(BINARY, len(payload))
            pending = self._pending
            if pending is None:
                pending = self._pending = []
                self.loop.call_soon(self._flush)
            pending.append(header)
            pending.append(payload)
            return
        self._flush()  # what was queued goes first
        await super().send(message)

    def _open_for_data(self) -> bool:
        connection = self.conn.connection
        return (self._frames_here and self.handshake_complete and not self.close_sent
                and not self.response_started and not self.disconnected
                and self.writable.is_set() and connection is not None
                and connection.state is ConnectionState.OPEN
                and not self.transport.is_closing())

    def _flush(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if not self.transport.is_closing():
            self.transport.write(b"".join(pending))

    def connection_lost(self, exc: Exception | None) -> None:
        self._pending = None
        super().connection_lost(exc)
