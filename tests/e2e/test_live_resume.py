"""A client that reconnects with the last seq it saw gets exactly what it missed, in order.

WebSocket sends the cursor as `?since=`, SSE as `Last-Event-ID` (what a browser's EventSource
sends by itself when it reconnects) or `?since=`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.client import counted, new_user
from tests.support.db import poison
from tests.support.live import LiveServer, live_server
from tocsin.domain.encoding import DATA_ERROR
from tocsin.store.sql import SqlStore

pytestmark = pytest.mark.e2e

MISSED = 50
QUEUE_SIZE = 8


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    # A send queue much shorter than the replay: the replay is the server's own burst, not a
    # sign of a slow client, and must arrive whole (else a client whose gap is longer than the
    # queue is closed as "too slow" on every reconnect, and can never catch up).
    async with live_server(database_url, tmp_path,
                           TOCSIN_STREAM_QUEUE_SIZE=str(QUEUE_SIZE)) as running:
        yield running


async def publish_many(server: LiveServer, user: str, count: int) -> list[str]:
    """`count` notifications, published a few at a time; their ids in seq order."""
    ids: dict[int, str] = {}
    for start in range(0, count, 10):
        receipts = await asyncio.gather(*(server.publish(user, title=f"missed {i}")
                                          for i in range(start, min(start + 10, count))))
        ids.update({r["seq"]: r["id"] for r in receipts})
    return [ids[seq] for seq in sorted(ids)]


async def test_reconnecting_with_the_last_seq_replays_exactly_what_was_missed(
        server: LiveServer) -> None:
    await websocket_since(server, new_user("ws"))
    await sse_last_event_id(server, new_user("sse"))


async def websocket_since(server: LiveServer, user: str) -> None:
    async with server.ws(user) as first:
        await first.expect("unread-count")
        seen = await server.publish(user, title="seen live")
        assert (await first.expect("notification")).seq == 1
    missed = await publish_many(server, user, MISSED)

    async with server.ws(user, since=1) as again:
        assert counted((await again.expect("unread-count")).data) == {"count": MISSED + 1,
                                                                      "seq": MISSED + 1}
        replayed = await again.take(MISSED)
        assert [e.name for e in replayed] == ["notification"] * MISSED
        assert [e.seq for e in replayed] == list(range(2, MISSED + 2))
        assert [e.data["id"] for e in replayed] == missed
        assert seen["id"] not in {e.data["id"] for e in replayed}
        # Nothing else is pending (no duplicate), and the stream carries on live.
        assert await again.barrier() == []
        live = await server.publish(user, title="live again")
        notification = await again.expect("notification")
        assert (notification.seq, notification.data["id"]) == (MISSED + 2, live["id"])

    # A cursor that is already up to date replays nothing.
    async with server.ws(user, since=MISSED + 2) as current:
        await current.expect("unread-count")
        assert await current.barrier() == []


async def sse_last_event_id(server: LiveServer, user: str) -> None:
    async with server.sse(user) as first:
        assert counted((await first.expect("unread-count")).data) == {"count": 0, "seq": 0}
        assert first.retry is not None  # the server tells EventSource how soon to come back
        await server.publish(user, title="seen live")
        assert (await first.expect("notification")).seq == 1
        last_event_id = first.last_event_id
    assert last_event_id == "1"
    missed = await publish_many(server, user, MISSED)

    async with server.sse(user, last_event_id=last_event_id) as again:
        assert (await again.expect("unread-count")).data["seq"] == MISSED + 1
        replayed = await again.take(MISSED)
        assert [e.name for e in replayed] == ["notification"] * MISSED
        assert [e.seq for e in replayed] == list(range(2, MISSED + 2))
        assert [e.data["id"] for e in replayed] == missed
        # No duplicate: the next notification is the next one published.
        live = await server.publish(user, title="live again")
        notification = await again.expect("notification")
        assert (notification.seq, notification.data["id"]) == (MISSED + 2, live["id"])
        assert again.last_event_id == str(MISSED + 2)

    # `?since=` works for SSE too, and Last-Event-ID wins over it.
    async with server.sse(user, since=MISSED, last_event_id=MISSED + 1) as both:
        await both.expect("unread-count")
        assert (await both.expect("notification")).seq == MISSED + 2
    async with server.sse(user, since=MISSED + 1) as by_query:
        await by_query.expect("unread-count")
        assert (await by_query.expect("notification")).seq == MISSED + 2



async def test_a_replay_through_an_unencodable_row_arrives_whole(
        server: LiveServer, database_url: str) -> None:
    """A stored row that cannot be encoded as it is does not stall a replay: it arrives
    without its data (and `data_error` says why), and the stream carries on live."""
    user = new_user()
    receipts = [await server.publish(user, title=f"#{i}") for i in range(1, 4)]
    store = SqlStore(database_url)
    try:
        await poison(store, receipts[1]["id"])
    finally:
        await store.close()
    async with server.ws(user, since=0) as ws, server.sse(user, since=0) as sse:
        for stream in (ws, sse):
            await stream.expect("unread-count")
            replayed = await stream.take(3)
            assert [event.seq for event in replayed] == [1, 2, 3], stream.label
            assert replayed[1].data["data_error"] == DATA_ERROR
            assert replayed[1].data["title"] == "#2"
        await server.publish(user, title="#4")
        for stream in (ws, sse):
            assert (await stream.until("notification"))[0].seq == 4
