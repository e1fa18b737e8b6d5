"""A client that stops reading is cut off instead of growing the server's memory, and it
recovers everything it missed by reconnecting with its last seq.

The stalled client is a real WebSocket whose socket has a tiny receive buffer and whose library
stops reading after one unread frame, so the server's writes back up for real. The tests learn
that the server let go of the stream by its per-user stream limit (1): while the stalled stream
is held, a second stream of the user is refused with 429; once the server drops it, one is let in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.client import counted, new_user
from tests.support.live import (
    ABNORMAL,
    WAIT,
    LiveServer,
    WsStream,
    live_server,
    open_ws,
    token_for,
)

pytestmark = pytest.mark.e2e

QUEUE_SIZE = 8
TRY_AGAIN_LATER = 1013
BLOB_BYTES = 50_000
#: Enough to fill any loopback socket buffers many times over (Linux caps them at a few MB).
MOST_PUBLISHES = 400


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path,
                           TOCSIN_STREAM_QUEUE_SIZE=str(QUEUE_SIZE),
                           TOCSIN_STREAM_SEND_TIMEOUT_SECONDS="2",
                           TOCSIN_MAX_STREAMS_PER_USER="1") as running:
        yield running


def incompressible(size: int) -> str:
    """Random text: permessage-deflate must not shrink it below its size."""
    return base64.b64encode(os.urandom(size * 3 // 4)).decode()


@asynccontextmanager
async def stalled_ws(server: LiveServer, user: str) -> AsyncIterator[WsStream]:
    """A WebSocket that reads only when the test asks it to."""
    address = urlsplit(server.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.settimeout(WAIT)
    sock.connect((address.hostname, address.port))
    sock.setblocking(False)
    async with open_ws(server.url, token_for(user), sock=sock, max_queue=1, compression=None,
                       label="stalled") as stream:
        yield stream


async def stream_admitted(server: LiveServer, user: str) -> bool:
    """Whether a new stream of `user` is let in now (it is closed again at once)."""
    headers = {"Authorization": f"Bearer {token_for(user)}"}
    async with httpx.AsyncClient(timeout=WAIT) as client, client.stream(
        "GET", f"{server.url}/v1/stream", headers=headers
    ) as response:
        assert response.status_code in (200, 429), response.status_code
        if response.status_code == 429:
            await response.aread()
            assert response.json()["error"]["code"] == "too_many_connections"
            assert response.headers["Retry-After"].isdigit()
        return response.status_code == 200


async def test_a_client_that_stops_reading_is_cut_off_and_recovers(server: LiveServer) -> None:
    user = new_user()
    blob = incompressible(BLOB_BYTES)
    async with stalled_ws(server, user) as stalled:
        assert counted((await stalled.expect("unread-count")).data) == {"count": 0, "seq": 0}
        assert not await stream_admitted(server, user)  # the limit holds while it is open

        # The client reads nothing more. Publish until the server lets go of its stream.
        published = 0
        for _ in range(MOST_PUBLISHES):
            published = (await server.publish(user, data={"blob": blob}))["seq"]
            if await stream_admitted(server, user):
                break
        else:
            raise AssertionError(f"the stalled stream was still held after {published} "
                                 f"notifications of {BLOB_BYTES} bytes")

        # Reading again, the client gets what had reached its socket, then the end.
        end, before = await stalled.ended()
        # The server could not even write a close frame to it (1006), or did (1013).
        assert end.code in (ABNORMAL, TRY_AGAIN_LATER), end
        got = [e.seq for e in before if e.name == "notification"]
        assert got == list(range(1, len(got) + 1))
        assert len(got) < published, "the stalled client was sent everything after all"
        assert all(e.data["data"] == {"blob": blob} for e in before if e.name == "notification")
    last = got[-1] if got else 0

    # It comes back with the last seq it saw and gets exactly the rest.
    async with admitted_ws(server, user, since=last) as again:
        count = await again.expect("unread-count")
        assert counted(count.data) == {"count": published, "seq": published}
        rest = await again.take(published - last)
        assert [e.seq for e in rest] == list(range(last + 1, published + 1))
        assert await again.barrier() == []

    # A client that vanishes without a close frame (its socket torn down) frees its slot too.
    async with admitted_ws(server, user, since=published) as vanishing:
        await vanishing.expect("unread-count")
        vanishing.socket.transport.abort()
    for _ in range(200):  # bounded: 200 x 50 ms
        if await stream_admitted(server, user):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the stream of a vanished client was never released")


@asynccontextmanager
async def admitted_ws(server: LiveServer, user: str, since: int) -> AsyncIterator[WsStream]:
    """A WebSocket of `user`, once the server has released the user's previous stream (its
    one slot): refused with 403 meanwhile, so retried a bounded number of times."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(200):  # bounded: 200 x 50 ms
            try:
                stream = await stack.enter_async_context(server.ws(user, since=since))
                break
            except InvalidStatus as refused:
                assert refused.response.status_code == 403
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the user's previous stream was never released")
        yield stream
