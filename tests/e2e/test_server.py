"""A real `tocsin serve` process, on SQLite and on PostgreSQL, driven over HTTP."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import Api, counted, new_user
from tests.support.db import assert_counter_matches, seqs_of
from tests.support.server import ServerProcess, run_cli, tocsin_env, tocsin_server
from tocsin.store.sql import SqlStore

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with tocsin_server(tocsin_env(database_url), tmp_path) as running:
        yield running


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield Api(client)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[SqlStore]:
    """A second view of the server's database, to check what it says against what it stored."""
    store = SqlStore(database_url)
    try:
        yield store
    finally:
        await store.close()


async def test_publish_list_read_count(http: Api, db: SqlStore) -> None:
    user = new_user()
    receipts = [(await http.publish(user, title=f"n{i}"))["notifications"][0] for i in range(3)]
    assert [r["seq"] for r in receipts] == [1, 2, 3]
    assert await assert_counter_matches(db, user) == 3

    listed = await http.me(user, "notifications")
    assert [n["seq"] for n in listed["notifications"]] == [3, 2, 1]
    assert (listed["unread_count"], listed["seq"]) == (3, 3)

    read = await http.me(user, f"notifications/{receipts[0]['id']}/read", method="POST")
    assert (read["unread_count"], read["seq"]) == (2, 3)
    assert await assert_counter_matches(db, user) == 2

    everything = await http.me(user, "notifications/read-all", method="POST", json={"seq": 2})
    assert everything["unread_count"] == 1
    assert counted(await http.me(user, "unread-count")) == {"count": 1, "seq": 3}
    assert await assert_counter_matches(db, user) == 1


async def test_fifty_concurrent_publishers_to_one_user(http: Api, db: SqlStore) -> None:
    user = new_user()
    results = await asyncio.gather(*(http.publish(user) for _ in range(50)))
    assert sorted(r["notifications"][0]["seq"] for r in results) == list(range(1, 51))
    assert await seqs_of(db, user) == list(range(1, 51))
    assert await assert_counter_matches(db, user) == 50


async def test_ten_racing_idempotent_requests_write_one_row(http: Api, db: SqlStore) -> None:
    user, key = new_user(), str(uuid.uuid4())
    body = {"user_id": user, "type": "comment", "title": "once"}

    async def attempt() -> httpx.Response:
        return await http.client.post("/v1/notifications", json=body,
                                      headers={**http.publisher, "Idempotency-Key": key})

    responses = await asyncio.gather(*(attempt() for _ in range(10)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {202, 409}, statuses
    bodies = {r.text for r in responses if r.status_code == 202}
    assert len(bodies) == 1
    assert await seqs_of(db, user) == [1]


async def test_access_log_never_shows_query_strings(server: ServerProcess, http: Api) -> None:
    secret = "leak-me-" + uuid.uuid4().hex
    response = await http.client.get(f"/v1/me/unread-count?token={secret}")
    assert response.status_code == 401
    await http.client.get("/healthz")
    assert "/v1/me/unread-count" in server.output()
    assert secret not in server.output()


def test_sigterm_stops_cleanly(server: ServerProcess) -> None:
    server.process.terminate()
    # uvicorn finishes its graceful shutdown, then re-raises the signal for the supervisor
    assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.output()


def test_two_servers_starting_together_on_a_new_database(database_url: str,
                                                         tmp_path: Path) -> None:
    env = tocsin_env(database_url)
    with tocsin_server(env, tmp_path) as first, tocsin_server(env, tmp_path) as second:
        for running in (first, second):
            assert httpx.get(f"{running.url}/readyz", timeout=10).json() == {"status": "ready"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TOCSIN_PORT", "0"), ("TOCSIN_DATABASE_URL", "mysql://x/y"),
     ("TOCSIN_JWT_SECRET", "short"), ("TOCSIN_MAX_BODY_BYTES", "many")],
)
def test_bad_setting_fails_at_start_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    env = tocsin_env(f"sqlite:///{tmp_path / 't.db'}", **{variable: value})
    result = run_cli("serve", env=env, cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    assert variable in result.stderr, result.stderr
