"""`Connection` in process, over a real SQLite store, the in-process bus, the hub and the fanout:
what it hands a transport to write, framed by the WebSocket codec as the real endpoint frames
it, with no socket in between."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.client import counted
from tests.support.db import migrated
from tocsin.bus.memory import MemoryBus
from tocsin.clock import Clock, FrozenClock, SystemClock
from tocsin.domain.drafts import NotificationDraft, PublishBatch
from tocsin.domain.models import Notification
from tocsin.pipeline.reads import Reads
from tocsin.realtime.connection import Connection, LiveServices
from tocsin.realtime.fanout import Fanout
from tocsin.realtime.hub import Hub
from tocsin.realtime.session import (
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    Close,
    Limits,
    Session,
    Writable,
)
from tocsin.realtime.transports.websocket import WebSocketCodec
from tocsin.store.sql import SqlStore

#: The longest any one expected frame may take: a test that would hang fails instead.
WAIT = 5.0


class BrokenReplays(SqlStore):
    """A store whose replay fails with an error no one planned for."""

    async def notifications_after(self, user_id: str, after: int, limit: int
                                  ) -> list[Notification]:
        raise RuntimeError("replay exploded")


@pytest.fixture
async def broken_store(tmp_path: Path) -> AsyncIterator[BrokenReplays]:
    async with migrated(BrokenReplays(f"sqlite:///{tmp_path / 'c.db'}")) as the_store:
        yield the_store


async def test_a_replay_that_fails_ends_the_stream_with_a_close_code(
        broken_store: BrokenReplays, caplog: pytest.LogCaptureFixture) -> None:
    clock = SystemClock()
    await broken_store.publish(PublishBatch(publisher="p", drafts=[
        NotificationDraft(user_id="ada", type="comment", data={})]), clock.now(), 60)
    bus = MemoryBus()
    services = LiveServices(store=broken_store, hub=Hub(bus),
                            reads=Reads(broken_store, clock, [Fanout(bus)]), clock=clock)
    session = Session(user_id="ada", since=0, limits=Limits(), now=0.0)
    tab = Tab(WebSocketCodec())
    tab.connection = connection = Connection(session, services, tab)
    await connection.open()
    try:
        first = await tab.next()
        assert isinstance(first, Frame) and first.event == "unread-count"
        ended = await tab.next()  # never hangs: the failed replay closes the stream
        assert isinstance(ended, Close) and ended.code == INTERNAL_ERROR
    finally:
        await connection.close()
    assert any(record.levelno == logging.ERROR and "replay for user ada failed" in
               record.getMessage() for record in caplog.records)


# -- a node in process, and a transport with no socket ----------------------------------------


@dataclass
class Frame:
    """One frame as a WebSocket client reads it."""

    event: str
    data: Any


class Tab:
    """A transport without a socket, and the connection's sink: it keeps what its connection
    writes, as a socket nobody reads would (counted in `waiting` until the test takes it; the
    end goes ahead of what waits, as the socket writer's does), frames it with the WebSocket
    codec as /v1/ws does, and hands it back parsed, as a client reads it; and it sends the
    client's frames through the same codec."""

    def __init__(self, codec: WebSocketCodec) -> None:
        self.codec = codec
        self.connection: Connection
        self._items: deque[tuple[Frame | Close, bool]] = deque()
        self._arrived = asyncio.Event()
        self.waiting = 0

    def write(self, item: Writable, counted: bool) -> None:
        text = self.codec.frame(item)
        if text is None:  # heartbeats are not frames on WebSocket
            return
        message = orjson.loads(text)
        assert set(message) == {"event", "data"}, text
        self._items.append((Frame(message["event"], message["data"]), counted))
        self.waiting += counted
        self._arrived.set()

    def end(self, close: Close) -> None:
        self._items.clear()
        self.waiting = 0
        self._items.append((close, False))
        self._arrived.set()

    async def next(self) -> Frame | Close:
        async with asyncio.timeout(WAIT):
            while not self._items:
                self._arrived.clear()
                await self._arrived.wait()
        item, counted = self._items[0]
        if isinstance(item, Close):
            return item  # the end stays: every later read sees it again
        self._items.popleft()
        self.waiting -= counted
        return item

    async def expect(self, event: str) -> Any:
        """The data of the next frame, which must be `event`."""
        frame = await self.next()
        assert isinstance(frame, Frame) and frame.event == event, (event, frame)
        return frame.data

    async def closed(self) -> Close:
        item = await self.next()
        assert isinstance(item, Close), item
        return item

    def send(self, **op: Any) -> None:
        self.connection.op(self.codec.parse(orjson.dumps(op).decode()))

    async def barrier(self) -> list[Frame]:
        """Ping, and everything written before the pong: all that was pending."""
        self.send(op="ping")
        before: list[Frame] = []
        while (frame := await self.next()) != Frame("pong", {}):
            assert isinstance(frame, Frame), (frame, before)
            before.append(frame)
        return before


class Node:
    """The live half of one node, as `Realtime` wires it, on a store of its own."""

    def __init__(self, store: SqlStore, queue_size: int = 256,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.bus = MemoryBus()
        self.hub = Hub(self.bus)
        self.fanout = Fanout(self.bus)
        self.live = LiveServices(store=store, hub=self.hub,
                                 reads=Reads(store, self.clock, [self.fanout]),
                                 clock=self.clock, queue_size=queue_size)
        self.codec = WebSocketCodec()
        self.connections: list[Connection] = []

    async def open(self, user: str, since: int | None = None,
                   expires_in: float | None = None) -> Tab:
        now = self.clock.monotonic()
        session = Session(user_id=user, since=since, limits=Limits(), now=now,
                          expires_at=None if expires_in is None else now + expires_in)
        tab = Tab(self.codec)
        tab.connection = connection = Connection(session, self.live, tab)
        self.connections.append(connection)
        await connection.open()
        return tab

    async def publish(self, user: str, title: str = "hello") -> Notification:
        """Commit one notification, then announce it, as the publish pipeline does."""
        outcome = await self.store.publish(PublishBatch(publisher="p", drafts=[
            NotificationDraft(user_id=user, type="comment", data={}, title=title)]),
            self.clock.now(), 60)
        await self.fanout.published(outcome)
        (stored,) = outcome.stored
        return stored

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


@pytest.fixture
async def node(store: SqlStore) -> AsyncIterator[Node]:
    running = Node(store)
    try:
        yield running
    finally:
        await running.close()


async def notification(tab: Tab, expected: Notification) -> None:
    """The next frames are `expected`, as the list returns it, then the count at its seq."""
    assert await tab.expect("notification") == expected.to_json()
    assert (await tab.expect("unread-count"))["seq"] == expected.seq


async def test_a_connection_opens_with_the_count_then_delivers_live_events_in_order(
        node: Node) -> None:
    await node.publish("ada")
    tab = await node.open("ada")
    assert counted(await tab.expect("unread-count")) == {"count": 1, "seq": 1}
    published = [await node.publish("ada", title=f"#{i}") for i in range(2, 5)]
    assert [n.seq for n in published] == [2, 3, 4]
    for expected in published:
        await notification(tab, expected)
    assert await tab.barrier() == []


async def test_a_cursor_replays_what_was_missed_then_goes_live(node: Node) -> None:
    missed = [await node.publish("ada", title=f"#{i}") for i in range(1, 4)]
    tab = await node.open("ada", since=1)
    assert counted(await tab.expect("unread-count")) == {"count": 3, "seq": 3}
    for expected in missed[1:]:  # replayed from the store: no count after each
        assert await tab.expect("notification") == expected.to_json()
    assert await tab.barrier() == []
    await notification(tab, await node.publish("ada", title="live"))


async def test_a_mark_read_op_changes_the_store_and_reaches_every_connection_of_the_user(
        node: Node) -> None:
    first, second = await node.publish("ada"), await node.publish("ada")
    asker, other_tab = await node.open("ada"), await node.open("ada")
    stranger = await node.open("bob")
    for tab in (asker, other_tab, stranger):
        await tab.expect("unread-count")

    asker.send(op="mark-as-read", id=str(first.id))
    for tab in (asker, other_tab):
        assert await tab.expect("read") == {"ids": [str(first.id)]}
        assert counted(await tab.expect("unread-count")) == {"count": 1, "seq": 2}
    ack = await asker.expect("ack")
    assert ack == {"op": "mark-as-read", "id": str(first.id), "changed": 1,
                   "unread_count": 1, "seq": 2, "version": ack["version"]}
    assert (await node.store.get_notification("ada", first.id)).read
    assert counted((await node.store.unread_count("ada")).to_json()) == {"count": 1, "seq": 2}
    assert await other_tab.barrier() == []  # the ack is the asker's alone
    assert await stranger.barrier() == []

    other_tab.send(op="mark-all-as-read", seq=2)
    for tab in (asker, other_tab):
        assert await tab.expect("read-all") == {"seq": 2}
        assert counted(await tab.expect("unread-count")) == {"count": 0, "seq": 2}
    assert (await other_tab.expect("ack"))["changed"] == 1
    assert (await node.store.get_notification("ada", second.id)).read

    # Errors go to the asker only. A bad frame is answered at once; an operation on the store
    # when its turn comes, so the two errors name their op.
    asker.send(op="mark-as-read", id=str(uuid.UUID(int=1)))
    asker.send(op="launch")
    assert await asker.expect("error") == {
        "code": "unknown_op", "op": "launch",
        "message": "unknown op 'launch'; expected ping, mark-as-read or mark-all-as-read"}
    assert await asker.expect("error") == {"code": "not_found", "op": "mark-as-read",
                                           "message": "no such notification"}
    assert await asker.barrier() == []
    assert await other_tab.barrier() == []


async def test_a_client_that_falls_behind_is_closed_with_1013(store: SqlStore) -> None:
    node = Node(store, queue_size=4)
    try:
        for i in range(10):
            await node.publish("ada", title=f"old {i}")
        # A replay longer than the queue is not slowness: it arrives whole.
        tab = await node.open("ada", since=0)
        assert counted(await tab.expect("unread-count")) == {"count": 10, "seq": 10}
        assert [(await tab.expect("notification"))["seq"] for _ in range(10)] == list(
            range(1, 11))
        assert await tab.barrier() == []
        # Live events the client leaves unread: two publishes fill the queue, the third
        # overflows it. The stream ends at once, ahead of what is still queued.
        for i in range(3):
            await node.publish("ada", title=f"new {i}")
        ended = await tab.closed()
        assert (ended.code, ended.reason) == (TRY_AGAIN_LATER,
                                              "client too slow; reconnect with the last seq")
        assert tab.connection.closing
        tab.send(op="ping")  # ignored: nothing the client sends is acted upon any more
        assert await tab.closed() == ended
        # It returns with the last seq it had and gets exactly the rest.
        again = await node.open("ada", since=10)
        assert counted(await again.expect("unread-count")) == {"count": 13, "seq": 13}
        assert [(await again.expect("notification"))["seq"] for _ in range(3)] == [11, 12, 13]
        assert await again.barrier() == []
    finally:
        await node.close()


async def test_shutdown_ends_the_stream_and_close_detaches_it_from_the_hub(node: Node) -> None:
    leaving, staying = await node.open("ada"), await node.open("ada")
    for tab in (leaving, staying):
        await tab.expect("unread-count")
    assert (node.hub.users, node.hub.connections) == (1, 2)

    leaving.connection.shutdown(1001, "server shutting down")
    assert await leaving.closed() == Close(1001, "server shutting down")
    await leaving.connection.close()
    assert (node.hub.users, node.hub.connections) == (1, 1)
    # The other connection of the user is untouched.
    await notification(staying, await node.publish("ada"))

    await staying.connection.close()
    assert (node.hub.users, node.hub.connections) == (0, 0)


async def test_a_stream_ends_when_its_token_expires_on_the_injected_clock(
        store: SqlStore) -> None:
    """No waiting: the clock is moved, and the connections told to look at it."""
    clock = FrozenClock()
    node = Node(store, clock=clock)
    try:
        short, long_lived = await node.open("ada", expires_in=60), await node.open("ada")
        for tab in (short, long_lived):
            await tab.expect("unread-count")
        clock.advance(59)
        short.connection.poke()
        assert await short.barrier() == []  # a second before expiry: still open
        clock.advance(1)
        short.connection.poke()
        ended = await short.closed()
        assert (ended.code, ended.reason) == (POLICY_VIOLATION, "token expired")
        # Only that stream ends: the same user's other one goes on.
        long_lived.connection.poke()
        await notification(long_lived, await node.publish("ada", title="after"))
    finally:
        await node.close()
