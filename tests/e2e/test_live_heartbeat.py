"""Idle streams are kept alive: SSE sends `: ping` comment lines every TOCSIN_HEARTBEAT_SECONDS
(proxies would otherwise cut a silent response), and WebSocket clients are pinged by the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.client import counted, new_user
from tests.support.live import LiveServer, live_server

pytestmark = pytest.mark.e2e

PINGS = 2


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path, TOCSIN_HEARTBEAT_SECONDS="1") as running:
        yield running


async def test_idle_streams_are_kept_alive(server: LiveServer) -> None:
    await asyncio.gather(sse_gets_ping_comments(server, new_user("sse")),
                         websocket_is_pinged(server, new_user("ws")))


async def sse_gets_ping_comments(server: LiveServer, user: str) -> None:
    async with server.sse(user, keep_comments=True) as sse:
        assert counted((await sse.expect("unread-count")).data) == {"count": 0, "seq": 0}
        for _ in range(PINGS):
            ping = await sse.expect(":", timeout=10)
            assert ping.data == "ping"
        assert sse.comments == ["ping"] * PINGS
        # Comments are not events: they carry no id, so Last-Event-ID is not disturbed.
        assert sse.last_event_id is None
        receipt = await server.publish(user)
        notification, skipped = await sse.until("notification")
        assert notification.data["id"] == receipt["id"]
        assert {e.name for e in skipped} <= {":"}


async def websocket_is_pinged(server: LiveServer, user: str) -> None:
    frames = FrameLog()
    log = logging.getLogger(f"tests.live.{user}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(frames)
    try:
        async with server.ws(user, logger=log) as ws:
            await ws.expect("unread-count")
            for _ in range(100):  # bounded: 100 x 0.1 s, while pings come every second
                if frames.received("PING") >= PINGS:
                    break
                await asyncio.sleep(0.1)
            assert frames.received("PING") >= PINGS, frames.lines
            # The client's pongs kept it open, and pings are not events: nothing else came.
            assert await ws.barrier() == []
            receipt = await server.publish(user)
            assert (await ws.expect("notification")).data["id"] == receipt["id"]
    finally:
        log.removeHandler(frames)


class FrameLog(logging.Handler):
    """The websockets client's debug log of one connection: `< PING ...` per ping received."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def received(self, kind: str) -> int:
        return sum(line.startswith(f"< {kind}") for line in self.lines)
