"""Concurrent publishers, and a client that keeps dropping and resuming: nothing lost, no
duplicate, in order.

Twenty publishers post to one user at once while the client reads a few notifications,
disconnects, and reconnects with the last seq it saw, again and again. At the end it has held
every seq from 1 to N exactly once, in increasing order, across all its connections. An SSE
client (Last-Event-ID) and a WebSocket client (`since`) of two users do it at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.client import counted, new_user
from tests.support.live import LiveServer, LiveStream, live_server

pytestmark = pytest.mark.e2e

PUBLISHERS = 20
EACH = 8
TOTAL = PUBLISHERS * EACH
PER_CONNECTION = 7  # notifications read before each drop


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path) as running:
        yield running


Opener = Callable[[int], contextlib.AbstractAsyncContextManager[LiveStream]]


async def churn(server: LiveServer, user: str, open_at: Opener) -> list[int]:
    """Run the publishers while reading through short-lived connections; the seqs received."""

    async def publisher(number: int) -> None:
        for i in range(EACH):
            await server.publish(user, title=f"p{number}-{i}")

    received: list[int] = []
    async with open_at(0) as stream:  # subscribed before the first publish
        await stream.expect("unread-count")
        publishers = asyncio.gather(*(publisher(n) for n in range(PUBLISHERS)))
        try:
            received += [n.seq for n in await stream.notifications(PER_CONNECTION)]
        except BaseException:
            publishers.cancel()
            raise
    try:
        for _ in range(TOTAL):  # bounded: every pass reads at least one notification
            if len(received) >= TOTAL:
                break
            async with open_at(received[-1]) as stream:
                wanted = min(PER_CONNECTION, TOTAL - len(received))
                received += [n.seq for n in await stream.notifications(wanted)]
        await asyncio.wait_for(publishers, timeout=60)
    finally:
        publishers.cancel()
    return received


async def test_resuming_clients_miss_nothing_under_concurrent_publishers(server: LiveServer
                                                                         ) -> None:
    """One user on SSE (resuming by Last-Event-ID), another on WebSocket (by `since`), at once."""
    sse_user, ws_user = new_user("sse"), new_user("ws")

    def sse_at(seq: int) -> contextlib.AbstractAsyncContextManager[LiveStream]:
        return server.sse(sse_user, last_event_id=seq)

    def ws_at(seq: int) -> contextlib.AbstractAsyncContextManager[LiveStream]:
        return server.ws(ws_user, since=seq)

    by_sse, by_ws = await asyncio.gather(churn(server, sse_user, sse_at),
                                         churn(server, ws_user, ws_at))
    assert by_sse == list(range(1, TOTAL + 1))
    assert by_ws == list(range(1, TOTAL + 1))
    for user in (sse_user, ws_user):
        assert counted(await server.api.me(user, "unread-count")) == {"count": TOTAL, "seq": TOTAL}
    # Nothing more is pending for the last position either: no duplicate is on its way.
    async with server.ws(ws_user, since=TOTAL) as last:
        assert counted((await last.expect("unread-count")).data) == {"count": TOTAL, "seq": TOTAL}
        assert await last.barrier() == []
