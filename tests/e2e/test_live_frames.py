"""What a WebSocket client sends that the server cannot use: answered, or closed, never a crash.

A text frame that is not a well-formed op gets an `error` event and the connection goes on; a
binary frame closes it with 1003 (unsupported data); a frame over TOCSIN_WS_MAX_FRAME_BYTES
closes it with 1009 (message too big). Other clients are served throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tests.support.client import counted, new_user
from tests.support.live import LiveEvent, LiveServer, live_server

pytestmark = pytest.mark.e2e

MAX_FRAME = 1024
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009
FLOOD = 1000
FLOOD_IDS = 20


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path,
                           TOCSIN_WS_MAX_FRAME_BYTES=str(MAX_FRAME)) as running:
        yield running


async def test_bad_frames_are_answered_or_closed_and_never_crash_the_server(server: LiveServer
                                                                           ) -> None:
    user = new_user()
    bad_frames = {
        "not json": "bad_frame",
        "": "bad_frame",
        "[1, 2]": "bad_frame",
        '"ping"': "bad_frame",
        "{}": "bad_frame",
        '{"op": 7}': "bad_frame",
        '{"op": "subscribe", "user_id": "someone-else"}': "unknown_op",
        '{"op": "mark-as-read"}': "bad_frame",
        '{"op": "mark-as-read", "id": "not-a-uuid"}': "bad_frame",
        '{"op": "mark-all-as-read", "seq": -1}': "bad_frame",
        '{"op": "mark-all-as-read", "seq": "3"}': "bad_frame",
        '{"op": "mark-all-as-read", "seq": true}': "bad_frame",
        '{"op": "ping"': "bad_frame",
        "\u00e9t\u00e9 \U0001f514": "bad_frame",
    }
    async with server.ws(user) as ws:
        await ws.expect("unread-count")
        for frame, code in bad_frames.items():
            await ws.send_raw(frame)
            error = await ws.expect("error")
            assert error.data["code"] == code, (frame, error)
            assert error.data["message"], error
        unknown = [e for e in ws.seen if e.name == "error" and e.data["code"] == "unknown_op"]
        assert unknown[0].data["op"] == "subscribe"
        # Still usable: a ping is answered, a publish arrives, an op works.
        await ws.send(op="ping")
        assert (await ws.expect("pong")).data == {}
        receipt = await server.publish(user)
        assert (await ws.expect("notification")).data["id"] == receipt["id"]
        await ws.expect("unread-count")
        await ws.send(op="mark-as-read", id=receipt["id"])
        await ws.expect("read")
        await ws.expect("unread-count")
        assert (await ws.expect("ack")).data["changed"] == 1
        # A frame just under the limit is a frame like any other.
        padded = orjson.dumps({"op": "ping", "pad": "x" * (MAX_FRAME - 40)}).decode()
        assert len(padded.encode()) <= MAX_FRAME
        await ws.send_raw(padded)
        await ws.expect("pong")

    await binary_and_oversized_frames_close_the_connection_only(server, user)


async def binary_and_oversized_frames_close_the_connection_only(server: LiveServer,
                                                                user: str) -> None:
    bystander = new_user("bystander")
    async with server.sse(bystander) as watching:
        await watching.expect("unread-count")

        async with server.ws(user) as ws:
            await ws.expect("unread-count")
            await ws.send_raw(b'{"op": "ping"}')
            end, before = await ws.ended()
            assert end.code == UNSUPPORTED_DATA, end
            assert before == []

        async with server.ws(user) as ws:
            await ws.expect("unread-count")
            await ws.send_raw(orjson.dumps({"op": "ping", "pad": "x" * 4096}).decode())
            end, before = await ws.ended()
            assert end.code == MESSAGE_TOO_BIG, end
            assert before == []

        async with server.ws(user) as ws:
            await ws.expect("unread-count")
            await ws.send_raw("é" * (MAX_FRAME // 2 + 1))  # over the limit in bytes
            end, _ = await ws.ended()
            assert end.code == MESSAGE_TOO_BIG, end

        # The server is fine: a new connection works, and the bystander was never disturbed.
        assert await server.alive()
        async with server.ws(user) as ws:
            await ws.expect("unread-count")
            receipt = await server.publish(user)
            assert (await ws.expect("notification")).data["id"] == receipt["id"]
        mine = await server.publish(bystander)
        assert (await watching.expect("notification")).data["id"] == mine["id"]
    assert "Traceback" not in server.process.output()


async def test_a_flood_of_operations_is_answered_in_order_and_starves_no_one(
        server: LiveServer) -> None:
    """One client firing operations as fast as it can write them must not queue a database
    transaction per frame ahead of everyone else: its operations run one at a time, answered in
    the order asked, while other users' requests go through."""
    user, other = new_user("flooder"), new_user("other")
    ids = [(await server.publish(user))["id"] for _ in range(FLOOD_IDS)]
    asked = [ids[i % FLOOD_IDS] for i in range(FLOOD)]
    async with server.ws(user) as ws, server.sse(other) as watching:
        await ws.expect("unread-count")
        await watching.expect("unread-count")
        acks: list[LiveEvent] = []

        async def read_acks() -> None:
            for _ in range(FLOOD * 3):  # acks, plus the read events of the first reads
                event = await ws.next(timeout=60)
                if event.name == "ack":
                    acks.append(event)
                    if len(acks) == FLOOD:
                        return

        reader = asyncio.create_task(read_acks())
        try:
            for notification_id in asked:
                await ws.send(op="mark-as-read", id=notification_id)
            await server.publish(other)
            acked_before_the_other_publish_returned = len(acks)
            await watching.expect("notification")
            await asyncio.wait_for(reader, timeout=120)
        finally:
            reader.cancel()
        assert [a.data["id"] for a in acks] == asked  # answered in the order asked
        assert sum(a.data["changed"] for a in acks) == FLOOD_IDS
        assert acked_before_the_other_publish_returned < FLOOD // 2, (
            f"another user's publish waited for {acked_before_the_other_publish_returned} of "
            f"this client's {FLOOD} operations")
    assert counted(await server.api.me(user, "unread-count")) == {"count": 0, "seq": FLOOD_IDS}
