"""A real server on a private PostgreSQL that is stopped, held "starting up" and started again
while publishers and readers keep calling: every answer is a 2xx or the documented 503 with
Retry-After (no 500, no dropped connection), and every acknowledged publish is stored once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.client import new_user
from tests.support.db import assert_counter_matches
from tests.support.live import LiveServer, live_server
from tests.support.services import PrivatePostgres, private_postgres
from tocsin.store.sql import SqlStore

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PUBLISHERS = 6


async def test_publishes_under_outages_get_202_or_503_and_lose_nothing(tmp_path: Path) -> None:
    with private_postgres() as database:
        async with live_server(database.url, tmp_path,
                               TOCSIN_DB_CONNECT_TIMEOUT="2") as node:
            users = [new_user() for _ in range(PUBLISHERS)]
            for user in users:  # each user exists before the outages begin
                await node.publish(user, title="first")
            statuses: Counter[str] = Counter()
            acknowledged: dict[str, list[str]] = {user: [] for user in users}
            stop = asyncio.Event()

            async def publisher(user: str) -> None:
                while not stop.is_set():
                    status = await _publish_once(node, user, acknowledged[user])
                    statuses[status] += 1
                    if status != "202":
                        await asyncio.sleep(0.05)

            async def prober() -> None:
                while not stop.is_set():
                    for path in ("/readyz", "/v1/me/unread-count"):
                        statuses[f"{path} " + await _probe(node, path, users[0])] += 1
                    await asyncio.sleep(0.05)

            tasks = [asyncio.create_task(publisher(user)) for user in users]
            tasks.append(asyncio.create_task(prober()))
            try:
                await _outages(database)
            finally:
                stop.set()
                await asyncio.gather(*tasks)

            assert set(statuses) <= {"202", "503", "/readyz 200", "/readyz 503",
                                     "/v1/me/unread-count 200", "/v1/me/unread-count 503"}, \
                statuses
            assert statuses["202"] > 0 and statuses["503"] > 0, statuses
            assert "Traceback" not in node.process.output()
            await _everything_acknowledged_is_stored_once(database.url, node, acknowledged)


async def _outages(database: PrivatePostgres) -> None:
    """Load first, then: a stop, a restart held in "starting up", and a normal restart."""
    await asyncio.sleep(1.0)
    for _ in range(2):
        await asyncio.to_thread(database.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(database.start_refusing)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(database.stop)
        await asyncio.to_thread(database.start)
        await asyncio.sleep(1.5)


async def _publish_once(node: LiveServer, user: str, acknowledged: list[str]) -> str:
    try:
        response = await node.api.client.post(
            "/v1/notifications", json={"user_id": user, "type": "comment", "title": "load"},
            headers=node.api.publisher, timeout=30)
    except httpx.HTTPError as exc:  # a dropped connection is a failure of its own kind
        return f"transport error: {type(exc).__name__}"
    if response.status_code == 202:
        acknowledged.append(response.json()["notifications"][0]["id"])
    elif response.status_code == 503 and not _documented_503(response):
        return f"undocumented 503: {response.text}"
    return str(response.status_code)


async def _probe(node: LiveServer, path: str, user: str) -> str:
    headers = node.api.user(user) if path.startswith("/v1/me") else {}
    try:
        response = await node.api.client.get(path, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        return f"transport error: {type(exc).__name__}"
    if response.status_code == 503 and not _documented_503(response):
        return f"undocumented 503: {response.text}"
    return str(response.status_code)


def _documented_503(response: httpx.Response) -> bool:
    body = response.json()
    return bool(body.get("error", {}).get("code") == "store_unavailable") and \
        response.headers.get("Retry-After", "").isdigit()


async def _everything_acknowledged_is_stored_once(url: str, node: LiveServer,
                                                  acknowledged: dict[str, list[str]]) -> None:
    store = SqlStore(url)
    try:
        for user, ids in acknowledged.items():
            listed = await _all_notifications(node, user)
            stored = [item["id"] for item in listed]
            # A publish answered 503 may still have committed (the answer to its commit was
            # lost with the connection), so the store holds every acknowledged id, and perhaps
            # a few that were not acknowledged; never one twice, never a gap in the seqs.
            assert set(ids) <= set(stored), user
            assert len(stored) == len(set(stored)), user
            assert [item["seq"] for item in listed] == list(range(len(listed), 0, -1)), user
            assert await assert_counter_matches(store, user) == len(listed)
    finally:
        await store.close()


async def _all_notifications(node: LiveServer, user: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if before is not None:
            params["before"] = before
        page = await node.api.me(user, "notifications", params=params)
        found += page["notifications"]
        before = page["next"]
        if before is None:
            return found
