"""A stream lives no longer than its token: at `exp` the WebSocket is closed with 1008 and the
SSE response ends. The client must come back with a fresh token; the old one is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.client import new_user
from tests.support.live import (
    LiveServer,
    live_server,
    open_sse,
    open_ws,
    sse_refused,
    token_for,
    ws_refused,
)

pytestmark = pytest.mark.e2e

POLICY_VIOLATION = 1008
TTL = 3  # seconds; `exp` is whole seconds, so the stream gets between 2 and 3 of them


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path) as running:
        yield running


async def test_streams_end_when_their_token_expires(server: LiveServer) -> None:
    user = new_user()
    token = token_for(user, ttl=TTL)
    async with open_ws(server.url, token) as ws, open_sse(server.url, token) as sse, \
            server.ws(user, label="long-lived") as other:
        for stream in (ws, sse, other):
            await stream.expect("unread-count")
        # Live until then.
        receipt = await server.publish(user)
        for stream in (ws, sse, other):
            assert (await stream.expect("notification")).data["id"] == receipt["id"]
            await stream.expect("unread-count")

        ws_end, _ = await ws.ended(timeout=TTL + 10)
        assert ws_end.code == POLICY_VIOLATION, ws_end
        assert "expired" in ws_end.reason
        sse_end, _ = await sse.ended(timeout=TTL + 10)
        assert (sse_end.code, sse_end.reason) == (None, "end of body")  # a clean end

        # Only those streams ended: the same user's stream with a longer token goes on.
        assert await other.barrier() == []
        after = await server.publish(user)
        assert (await other.expect("notification")).data["id"] == after["id"]

    # The expired token opens nothing.
    assert await ws_refused(server.url, token) == 403
    status, body = await sse_refused(server.url, token)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
