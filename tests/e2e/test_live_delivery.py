"""A publish reaches every open tab of its user, on WebSocket and on SSE, and nobody else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.client import counted, new_user
from tests.support.live import LiveServer, LiveStream, live_server

pytestmark = pytest.mark.e2e


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path) as running:
        yield running


async def test_a_publish_reaches_every_tab_of_its_user_and_no_one_else(server: LiveServer
                                                                       ) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    async with server.ws(alice, label="alice-ws-1") as tab1, \
            server.ws(alice, label="alice-ws-2") as tab2, \
            server.sse(alice, label="alice-sse") as tab3, \
            server.ws(bob, label="bob-ws") as bob_ws, \
            server.sse(bob, label="bob-sse") as bob_sse:
        for stream in (tab1, tab2, tab3, bob_ws, bob_sse):
            opening = await stream.expect("unread-count")
            assert counted(opening.data) == {"count": 0, "seq": 0}

        receipt = await server.publish(alice, title="Alice, you have mail",
                                       data={"thread": 7, "text": "héllo ✓"})
        assert receipt["seq"] == 1

        for stream in (tab1, tab2, tab3):
            notification = await stream.expect("notification")
            assert notification.seq == 1
            assert notification.data["id"] == receipt["id"]
            assert notification.data["title"] == "Alice, you have mail"
            assert notification.data["data"] == {"thread": 7, "text": "héllo ✓"}
            assert notification.data["read"] is False
            count = await stream.expect("unread-count")
            assert counted(count.data) == {"count": 1, "seq": 1}
        assert tab3.seen[1].id == "1"  # SSE carries the seq as the event id, for Last-Event-ID
        # The SSE notification is the same object the list returns.
        listed = await server.api.me(alice, "notifications")
        assert listed["notifications"][0] == tab3.seen[1].data

        # Bob heard nothing of it: on WebSocket, everything queued for him comes before the
        # pong; on SSE, the next notification he gets is his own.
        assert await bob_ws.barrier() == []
        own = await server.publish(bob, title="Bob's own")
        for stream in (bob_ws, bob_sse):
            first = await stream.expect("notification")
            assert (first.data["id"], first.seq) == (own["id"], 1)
            assert counted((await stream.expect("unread-count")).data) == {"count": 1, "seq": 1}
        # ... and Alice's tabs heard nothing of Bob's.
        assert await tab1.barrier() == []
        assert await tab2.barrier() == []

        # A second tab of Alice's that opens now starts from the current count.
        async with server.sse(alice, label="alice-late") as late:
            assert counted((await late.expect("unread-count")).data) == {"count": 1, "seq": 1}
            second = await server.publish(alice, title="second")
            for stream in (tab1, tab2, tab3, late):
                notification = await stream.expect("notification")
                assert (notification.data["id"], notification.seq) == (second["id"], 2)
                assert counted((await stream.expect("unread-count")).data) == {"count": 2, "seq": 2}


    # One publish to several users reaches each of them, once.
    users = [new_user("many") for _ in range(3)]
    async with server.ws(users[0]) as many_1, server.sse(users[1]) as many_2, \
            server.ws(users[2]) as many_3:
        group: list[LiveStream] = [many_1, many_2, many_3]
        for member in group:
            await member.expect("unread-count")
        response = await server.api.publish(users, title="to all")
        receipts = {r["user_id"]: r for r in response["notifications"]}
        for user, member in zip(users, group, strict=True):
            got = await member.expect("notification")
            assert got.data["id"] == receipts[user]["id"]
            assert counted((await member.expect("unread-count")).data) == {"count": 1, "seq": 1}
        assert await many_1.barrier() == []
        assert await many_3.barrier() == []
