"""Read state is shared: a read in one tab reaches every other tab of the user, with the count.

Whatever marks it read (a WebSocket op, or the REST API), every connection hears `read` or
`read-all` and then `unread-count`, and that count is the one GET /v1/me/unread-count gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.client import counted, new_user
from tests.support.live import LiveServer, LiveStream, live_server

pytestmark = pytest.mark.e2e


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path) as running:
        yield running


async def publish_seen_by(server: LiveServer, user: str, streams: list[LiveStream],
                          count: int) -> list[dict[str, Any]]:
    """Publish `count` notifications and see each stream receive them."""
    receipts = [await server.publish(user, title=f"n{i}") for i in range(count)]
    for stream in streams:
        got = await stream.notifications(count)
        assert [n.data["id"] for n in got] == [r["id"] for r in receipts]
        assert (await stream.expect("unread-count")).data["count"] == count
    return receipts


async def heard(stream: LiveStream, first: str, first_data: dict[str, Any],
                count: dict[str, int]) -> None:
    assert (await stream.expect(first)).data == first_data
    assert counted((await stream.expect("unread-count")).data) == count


async def test_a_read_anywhere_reaches_every_tab_with_the_right_count(server: LiveServer
                                                                       ) -> None:
    await read_over_websocket(server, new_user("ws-op"))
    await read_over_rest(server, new_user("rest"))


async def read_over_websocket(server: LiveServer, user: str) -> None:
    async with server.ws(user, label="tab-1") as tab1, server.ws(user, label="tab-2") as tab2, \
            server.sse(user, label="tab-3") as tab3:
        tabs: list[LiveStream] = [tab1, tab2, tab3]
        for tab in tabs:
            await tab.expect("unread-count")
        first, second, third = await publish_seen_by(server, user, tabs, 3)

        await tab1.send(op="mark-as-read", id=first["id"])
        # The tab that asked hears the change like every other tab, then its ack.
        for tab in tabs:
            await heard(tab, "read", {"ids": [first["id"]]}, {"count": 2, "seq": 3})
        ack = await tab1.expect("ack")
        assert ack.data == {"op": "mark-as-read", "id": first["id"], "changed": 1,
                            "unread_count": 2, "seq": 3, "version": 4}
        assert counted(await server.api.me(user, "unread-count")) == {"count": 2, "seq": 3}

        # Reading it again changes nothing: acked with changed 0, and nobody is told.
        await tab2.send(op="mark-as-read", id=first["id"])
        ack = await tab2.expect("ack")
        assert (ack.data["changed"], ack.data["unread_count"]) == (0, 2)
        assert await tab1.barrier() == []

        # mark-all-as-read up to seq 2 leaves the third unread.
        await tab2.send(op="mark-all-as-read", seq=2)
        for tab in tabs:
            await heard(tab, "read-all", {"seq": 2}, {"count": 1, "seq": 3})
        ack = await tab2.expect("ack")
        assert ack.data == {"op": "mark-all-as-read", "changed": 1, "unread_count": 1,
                            "seq": 3, "version": 5}
        assert counted(await server.api.me(user, "unread-count")) == {"count": 1, "seq": 3}
        listed = await server.api.me(user, "notifications")
        assert {n["id"]: n["read"] for n in listed["notifications"]} == {
            first["id"]: True, second["id"]: True, third["id"]: False}

        # A notification that is not the user's is an error, to the asker only.
        await tab1.send(op="mark-as-read", id="00000000-0000-4000-8000-000000000000")
        error = await tab1.expect("error")
        assert (error.data["code"], error.data["op"]) == ("not_found", "mark-as-read")
        assert await tab2.barrier() == []


async def read_over_rest(server: LiveServer, user: str) -> None:
    other = new_user("other")
    async with server.ws(user, label="ws") as ws, server.sse(user, label="sse") as sse, \
            server.ws(other, label="other") as stranger:
        tabs: list[LiveStream] = [ws, sse]
        for stream in (ws, sse, stranger):
            await stream.expect("unread-count")
        first, _, _, _ = await publish_seen_by(server, user, tabs, 4)

        read = await server.api.me(user, f"notifications/{first['id']}/read", method="POST")
        assert (read["unread_count"], read["seq"]) == (3, 4)
        for tab in tabs:
            await heard(tab, "read", {"ids": [first["id"]]}, {"count": 3, "seq": 4})
        assert counted(await server.api.me(user, "unread-count")) == {"count": 3, "seq": 4}

        everything = await server.api.me(user, "notifications/read-all", method="POST")
        assert everything["unread_count"] == 0
        for tab in tabs:
            await heard(tab, "read-all", {"seq": 4}, {"count": 0, "seq": 4})
        assert counted(await server.api.me(user, "unread-count")) == {"count": 0, "seq": 4}

        # Nothing left to read: nothing is announced. The next event is the next publish.
        await server.api.me(user, "notifications/read-all", method="POST")
        fifth = await server.publish(user)
        for tab in tabs:
            assert (await tab.expect("notification")).data["id"] == fifth["id"]
            assert counted((await tab.expect("unread-count")).data) == {"count": 1, "seq": 5}

        # Another user hears none of these reads.
        assert await stranger.barrier() == []
