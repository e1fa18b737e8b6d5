"""The socket writer: a stream's output, written in order through its ASGI `send`, at once.

A stream used to hold a task of its own that waited for its next item and then awaited the
server's `send`. An idle stream paid for that task, its frame and its waiter for hours; a busy
one paid a task switch per event. But an ASGI server's `send` completes without waiting as long
as the socket keeps up (uvicorn's waits only while the transport has paused writing, which is
when the client stopped reading): so the writer steps the `send` coroutine itself, in the
caller's turn of the loop, and only a `send` that has to wait gets a task, which drains the
backlog behind it and is gone once the socket keeps up again. (Python 3.12's eager tasks do the
same; this runs on 3.11.)

Guarantees:

- Messages are written in the order given; nothing is written after the end (`end`) or after
  a failure. The end goes ahead of what still waits behind a slow socket, which is dropped: a
  stream that ends is resumed by seq, and a slow client is best served its close at once.
- A `send` that cannot complete within `timeout` (the client stopped reading) or that raises
  (the client went away) fails the writer: its backlog is dropped and `on_done` is called.
- `on_done` is called exactly once: after the end message was handed to the server, or on the
  failure, whichever comes first; `abort` (the stream is over anyway) cancels the drain and
  does not call it.
- `waiting` counts the counted messages given but not written yet: the connection's bound on a
  client that cannot keep up.
- Before `attach` (a response that has not started yet), messages are held, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any, Protocol

from starlette.types import Message, Send

from tocsin.realtime.session import Close, Writable

log = logging.getLogger("tocsin.realtime")


class _Rest:
    """The rest of an awaitable that was stepped by hand and suspended on `yielded`: awaiting
    this runs it on to the end, exactly as a task would have (cancellation is passed in)."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Generator[Any, None, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, None, None]:
        yielded = self._yielded
        while True:
            try:
                yield yielded  # the future it waits on, handed to the task that awaits this
            except BaseException as exc:  # cancellation included, passed on
                try:
                    yielded = self._coro.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                yielded = self._coro.send(None)
            except StopIteration:
                return


class SocketWriter:
    __slots__ = ("_backlog", "_drain", "_ended", "_failed", "_on_done", "_send", "_timeout",
                 "waiting")

    def __init__(self, send: Send | None, timeout: float, on_done: Callable[[], None]) -> None:
        self._send = send
        self._timeout = timeout
        self._on_done = on_done
        # (message, counted) waiting behind a send that could not complete at once, or held
        # until `attach`; None while everything given has been written.
        self._backlog: deque[tuple[Message, bool]] | None = None if send else deque()
        self._drain: asyncio.Task[None] | None = None
        self._ended = False  # the end message was given: nothing more is taken
        self._failed = False
        self.waiting = 0

    @property
    def done(self) -> bool:
        """Nothing more will be written."""
        return self._failed or (self._ended and self._backlog is None and self._drain is None)

    def attach(self, send: Send, first: Iterable[Message] = ()) -> None:
        """Start writing through `send`: `first`, then whatever was held."""
        held = self._backlog or deque()
        self._send = send
        self._backlog = None
        for message in first:
            self._write(message, False)
        for message, counted in held:
            if counted:
                self.waiting -= 1
            self._write(message, counted)

    def write(self, message: Message, counted: bool = False) -> None:
        if self._ended or self._failed:
            return
        self._write(message, counted)

    def end(self, message: Message) -> None:
        """Write `message`, the last, ahead of whatever still waits (which is dropped: the
        client resumes by seq); `on_done` follows once it is handed over."""
        if self._ended or self._failed:
            return
        if self._backlog is not None and self._send is not None:
            self._backlog.clear()
            self.waiting = 0
        self._write(message, False)
        self._ended = True
        if self._backlog is None and not self._failed:
            self._finish()

    async def drained(self) -> None:
        """Returns once what was given is written or has failed (each send is bounded by the
        timeout, so this is too)."""
        drain = self._drain
        if drain is not None:
            await asyncio.wait([drain])

    def abort(self) -> None:
        self._failed = True
        self._backlog = None
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None

    # -- writing -------------------------------------------------------------------------------

    def _write(self, message: Message, counted: bool) -> None:
        if self._failed:
            return
        if self._backlog is not None:  # behind a send that waits (or before `attach`)
            self._backlog.append((message, counted))
            if counted:
                self.waiting += 1
            return
        assert self._send is not None
        coro = self._send(message).__await__()
        try:
            yielded = coro.send(None)
        except StopIteration:
            return  # written: the common case, with no task and no switch
        except Exception as exc:  # any failure of a send ends the stream
            self._fail(exc)
            return
        # The socket does not keep up: the rest waits, in order, behind this send.
        self._backlog = deque()
        self._drain = asyncio.get_running_loop().create_task(self._drain_from(_Rest(coro, yielded)))

    async def _drain_from(self, first: _Rest) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await first
            assert self._send is not None
            while self._backlog:
                message, counted = self._backlog.popleft()
                if counted:
                    self.waiting -= 1
                async with asyncio.timeout(self._timeout):
                    await self._send(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a timeout, or the client went away
            self._drain = None
            self._fail(exc)
            return
        self._backlog = None
        self._drain = None
        if self._ended:
            self._finish()

    def _fail(self, exc: BaseException) -> None:
        if self._failed:
            return
        log.debug("stream write failed: %r", exc)
        self._failed = True
        self._backlog = None
        self.waiting = 0
        self._on_done()

    def _finish(self) -> None:
        self._ended = True
        self._on_done()


class StreamTask:
    """A stream's one task, which reads from its client; whoever ends the stream (its writer,
    once the last message is written or a write failed) wakes it if it is waiting.

    The task is woken by cancelling it: `ended_here` tells the task's handler of
    `CancelledError` whether that cancellation was this one (swallowed) or came from outside
    (re-raised)."""

    __slots__ = ("ended", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.ended = False

    def bind(self) -> None:
        """The current task is the stream's."""
        self.task = asyncio.current_task()

    def stop(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.task is not None and asyncio.current_task() is not self.task:
            self.task.cancel()

    def ended_here(self) -> bool:
        """In the task's `except CancelledError`: True when the only cancellation was `stop`'s
        (then the task goes on to close the stream), False when it must re-raise."""
        task = asyncio.current_task()
        return self.ended and task is not None and task.uncancel() == 0


class Framing(Protocol):
    """One transport's ASGI messages for what a connection writes."""

    def message(self, item: Writable) -> Message | None:
        """The message that writes `item`; None for what the transport does not write."""

    def last(self, close: Close) -> Message:
        """The message that ends the stream."""


class FramedSink:
    """A connection's `Sink` (realtime/connection.py): its items framed by the transport's
    `Framing`, written by the socket writer."""

    __slots__ = ("_framing", "_writer")

    def __init__(self, writer: SocketWriter, framing: Framing) -> None:
        self._writer = writer
        self._framing = framing

    @property
    def waiting(self) -> int:
        return self._writer.waiting

    def write(self, item: Writable, counted: bool) -> None:
        message = self._framing.message(item)
        if message is not None:
            self._writer.write(message, counted)

    def end(self, close: Close) -> None:
        self._writer.end(self._framing.last(close))
