"""A cursor too far behind (more than TOCSIN_MAX_REPLAY) or ahead of the store is not replayed:
the client is told `resync` {"recovered": false}, refetches its list, and the stream goes on live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.client import counted, new_user
from tests.support.live import LiveServer, LiveStream, live_server

pytestmark = pytest.mark.e2e

MAX_REPLAY = 10
PUBLISHED = 15


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path, TOCSIN_MAX_REPLAY=str(MAX_REPLAY)) as running:
        yield running


@pytest.fixture
async def user(server: LiveServer) -> str:
    """A user with PUBLISHED notifications, seqs 1..PUBLISHED."""
    user = new_user()
    for i in range(PUBLISHED):
        await server.publish(user, title=f"old {i}")
    return user


async def resynced_then_live(server: LiveServer, user: str, stream: LiveStream,
                             expected_seq: int) -> None:
    count = await stream.expect("unread-count")
    assert count.data["seq"] == expected_seq - 1
    assert (await stream.expect("resync")).data == {"recovered": False}
    live = await server.publish(user, title="after the resync")
    notification = await stream.expect("notification")
    assert (notification.seq, notification.data["id"]) == (expected_seq, live["id"])


async def test_a_cursor_too_far_behind_gets_resync_then_live_events(server: LiveServer,
                                                                    user: str) -> None:
    behind = PUBLISHED - MAX_REPLAY - 1  # one more than may be replayed
    async with server.ws(user, since=behind) as stream:
        await resynced_then_live(server, user, stream, PUBLISHED + 1)
        after = {"count": PUBLISHED + 1, "seq": PUBLISHED + 1}
        (only,) = await stream.barrier()
        assert (only.name, counted(only.data)) == ("unread-count", after)

    # Exactly MAX_REPLAY behind is still replayed, in full.
    since = PUBLISHED + 1 - MAX_REPLAY
    async with server.ws(user, since=since) as stream:
        await stream.expect("unread-count")
        replayed = await stream.take(MAX_REPLAY)
        assert [e.seq for e in replayed] == list(range(since + 1, PUBLISHED + 2))
        assert await stream.barrier() == []

    # A cursor from the future (the database was reset) resyncs too.
    async with server.ws(user, since=PUBLISHED + 100) as stream:
        await resynced_then_live(server, user, stream, PUBLISHED + 2)

    # SSE, by Last-Event-ID and by ?since=.
    async with server.sse(user, last_event_id=0) as sse:
        await resynced_then_live(server, user, sse, PUBLISHED + 3)
        assert sse.seen[1].id is None  # resync is not a position in the sequence
        assert sse.seen[2].id == str(PUBLISHED + 3)
    async with server.sse(user, since=1) as sse:
        await resynced_then_live(server, user, sse, PUBLISHED + 4)
