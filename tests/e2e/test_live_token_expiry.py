"""A stream lives no longer than its token. The client must come back with a fresh token: an
expired one opens nothing, on either transport.

That an open stream ends at `exp` (WebSocket close 1008, SSE end of body) is the session's
rule on the injected clock, tested without waiting in tests/unit/test_connection.py and
tests/unit/test_session.py; the close reaching the wire is the endpoints' one path for every
close (1009 and 1013 are tested end to end in test_live_frames.py and
test_live_slow_client.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from tests.support.client import JWT_SECRET, new_user
from tests.support.live import LiveServer, live_server, sse_refused, ws_refused

pytestmark = pytest.mark.e2e


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path) as running:
        yield running


async def test_an_expired_token_opens_no_stream(server: LiveServer) -> None:
    user = new_user()
    now = int(time.time())
    expired = jwt.encode({"sub": user, "iat": now - 60, "exp": now - 1}, JWT_SECRET,
                         algorithm="HS256")
    assert await ws_refused(server.url, expired) == 403
    status, body = await sse_refused(server.url, expired)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert "expired" in body["error"]["message"]
    # A fresh token of the same user is let in.
    async with server.ws(user) as ws:
        await ws.expect("unread-count")
