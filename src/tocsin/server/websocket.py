"""uvicorn's wsproto WebSocket protocol, holding less for each of the hours a stream is idle.

Measured with tracemalloc over 2,000 idle streams (docs/benchmarks.md), two parts of every
stream were dead weight once it was open:

- the queue of incoming ASGI messages: an `asyncio.Queue` is three deques, about 2.3 KB,
  for what is almost always nothing or one message waiting for one reader. `Inbox` is a list
  and at most one waiter;
- wsproto's opening handshake (an h11 connection, its buffers and state, a deque of events):
  about 3 KB, kept by `WSConnection` for good although the handshake is over once the accept
  is written. It is let go then; the connection object that speaks WebSocket is kept.

Behaviour is uvicorn's; only these containers differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from uvicorn.protocols.websockets.wsproto_impl import WSProtocol


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


class LeanWSProtocol(WSProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]

    def start_keepalive(self) -> None:
        # Called once, right after the accept is written: the handshake is over.
        super().start_keepalive()
        conn = self.conn
        # Only once the accept is written (`connection` is set) and every event the handshake
        # parsed has been taken: then nothing reads the handshake again but `events()`.
        handshake = conn.handshake
        if conn.connection is not None and not getattr(handshake, "_events", None):
            conn.handshake = _DONE  # type: ignore[assignment]
