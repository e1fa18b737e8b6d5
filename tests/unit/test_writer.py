"""The socket writer's guarantees (realtime/writer.py), over an ASGI `send` that completes at
once until the test shuts its gate, as a server's does while the client stops reading."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from tocsin.realtime.writer import SocketWriter, StreamTask
from tocsin.server.websocket import Inbox


class Socket:
    """An ASGI `send`: it records what it is given, and waits while `gate` is shut."""

    def __init__(self) -> None:
        self.written: list[Any] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def send(self, message: MutableMapping[str, Any]) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.written.append(message["n"])


class Done:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def msg(n: Any) -> dict[str, Any]:
    return {"n": n}


async def test_a_socket_that_keeps_up_is_written_at_once_with_no_task() -> None:
    socket, done = Socket(), Done()
    writer = SocketWriter(socket.send, 1.0, done)
    tasks = len(asyncio.all_tasks())
    for n in range(3):
        writer.write(msg(n), counted=True)
        assert socket.written == list(range(n + 1))  # in this turn, before any await
    assert len(asyncio.all_tasks()) == tasks and writer.waiting == 0
    writer.end(msg("end"))
    assert socket.written == [0, 1, 2, "end"] and done.calls == 1 and writer.done
    writer.write(msg("late"))
    writer.end(msg("again"))
    await asyncio.sleep(0)
    assert socket.written == [0, 1, 2, "end"] and done.calls == 1


async def test_behind_a_waiting_send_the_rest_waits_in_order_and_is_counted() -> None:
    socket, done = Socket(), Done()
    writer = SocketWriter(socket.send, 5.0, done)
    socket.gate.clear()
    writer.write(msg(0), counted=True)  # suspends: written once the gate opens
    writer.write(msg(1), counted=True)
    writer.write(msg(2), counted=False)
    assert socket.written == [] and writer.waiting == 1  # the first is with the server
    socket.gate.set()
    await writer.drained()
    assert socket.written == [0, 1, 2] and writer.waiting == 0 and not writer.done
    writer.write(msg(3))  # the socket keeps up again: at once
    assert socket.written == [0, 1, 2, 3]
    assert done.calls == 0


async def test_the_end_goes_ahead_of_what_waits_and_done_follows_it() -> None:
    socket, done = Socket(), Done()
    writer = SocketWriter(socket.send, 5.0, done)
    socket.gate.clear()
    for n in range(4):
        writer.write(msg(n), counted=True)
    writer.end(msg("end"))
    assert writer.waiting == 0 and done.calls == 0
    socket.gate.set()
    await writer.drained()
    # The send already with the server completes; the rest is dropped (resumed by seq).
    assert socket.written == [0, "end"] and done.calls == 1 and writer.done


async def test_a_send_that_cannot_complete_in_time_fails_the_writer_once() -> None:
    socket, done = Socket(), Done()
    writer = SocketWriter(socket.send, 0.05, done)
    socket.gate.clear()
    writer.write(msg(0), counted=True)
    writer.write(msg(1), counted=True)
    await writer.drained()
    assert done.calls == 1 and writer.done and writer.waiting == 0
    socket.gate.set()
    writer.write(msg(2))
    writer.end(msg("end"))
    await asyncio.sleep(0)
    assert socket.written == [] and done.calls == 1


async def test_a_send_that_raises_fails_the_writer_at_once() -> None:
    socket, done = Socket(), Done()
    writer = SocketWriter(socket.send, 1.0, done)
    socket.fail = OSError("gone")
    writer.write(msg(0))
    assert done.calls == 1 and writer.done
    writer.end(msg("end"))
    assert done.calls == 1


async def test_before_attach_everything_is_held_then_written_after_the_first() -> None:
    socket, done = Socket(), Done()
    writer = SocketWriter(None, 1.0, done)
    writer.write(msg("a"), counted=True)
    writer.write(msg("b"), counted=False)
    assert writer.waiting == 1
    writer.attach(socket.send, [msg("start"), msg("opening")])
    assert socket.written == ["start", "opening", "a", "b"] and writer.waiting == 0


async def test_abort_cancels_a_waiting_send_without_calling_done() -> None:
    socket, done = Socket(), Done()
    writer = SocketWriter(socket.send, 5.0, done)
    socket.gate.clear()
    writer.write(msg(0))
    writer.abort()
    await asyncio.sleep(0)
    socket.gate.set()
    await asyncio.sleep(0)
    assert socket.written == [] and done.calls == 0 and writer.done


async def test_stop_wakes_the_stream_task_and_only_its_own_cancellation_is_swallowed() -> None:
    task_state = StreamTask()
    woken: list[str] = []

    async def reader(inbox: Inbox) -> None:
        task_state.bind()
        try:
            await inbox.get()
        except asyncio.CancelledError:
            woken.append("own" if task_state.ended_here() else "outside")
            if not task_state.ended:
                raise

    inbox = Inbox()
    running = asyncio.create_task(reader(inbox))
    await asyncio.sleep(0)
    task_state.stop()
    await running
    assert woken == ["own"] and not running.cancelled()

    outside = StreamTask()
    task_state = outside
    running = asyncio.create_task(reader(Inbox()))
    await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert woken == ["own", "outside"]


async def test_the_inbox_hands_messages_over_in_order_and_survives_a_cancelled_get() -> None:
    inbox = Inbox()
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert not inbox.empty() and inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    later = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(3)
    assert await asyncio.wait_for(later, 1) == 3
