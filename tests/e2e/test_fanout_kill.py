"""A `tocsin worker` expanding a topic of 5,000 subscribers on PostgreSQL, 100 per batch, is
killed with SIGKILL halfway; another worker finishes the fan-out. Every subscriber ends up with
exactly one notification (seq 1), and the fan-out says done with every recipient processed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.test_worker_kill import WorkerProcess, exit_code, start_worker
from tests.support.client import Api, settings_for
from tests.support.server import tocsin_env
from tocsin.app import create_app
from tocsin.store.schema import fanouts, notifications, topic_subscribers, topics
from tocsin.store.sql import SqlStore

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SUBSCRIBERS = 5000
BATCH = 100
LEASE_SECONDS = 3
TOPIC = "project-kill"



async def with_subscribers(store: SqlStore) -> list[str]:
    """The topic and its subscribers, written straight to the tables (setup, not the test)."""
    now = datetime.now(UTC)
    users = [f"fan-{i:05d}" for i in range(SUBSCRIBERS)]
    async with store.engine.begin() as conn:
        await conn.execute(topics.insert().values(name=TOPIC, created_at=now, updated_at=now))
        await conn.execute(topic_subscribers.insert(),
                           [{"topic": TOPIC, "user_id": user, "created_at": now}
                            for user in users])
    return users


async def publish_to_topic(store: SqlStore) -> dict[str, Any]:
    app = create_app(settings_for(store.url, worker_in_process=False), store=store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test") as client:
        api = Api(client)
        response = await client.post("/v1/notifications", headers=api.publisher, json={
            "topic": TOPIC, "type": "comment", "title": "Release 2 is out"})
        assert response.status_code == 202, response.text
        accepted: dict[str, Any] = response.json()
        return accepted


async def fanout_row(store: SqlStore, fanout_id: uuid.UUID) -> Any:
    async with store.engine.connect() as conn:
        return (await conn.execute(sa.select(fanouts).where(fanouts.c.id == fanout_id))).one()


async def kill_halfway(store: SqlStore, worker: WorkerProcess, fanout_id: uuid.UUID) -> int:
    """SIGKILL the worker once it has expanded some batches but not all; returns how many
    recipients were committed when it died. It is frozen (SIGSTOP) while looked at, so what
    is read is what it leaves behind (a statement already sent may still commit)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        os.kill(worker.pid, signal.SIGSTOP)
        row = await fanout_row(store, fanout_id)
        if row.processed >= 5 * BATCH:
            assert row.status == "running", "the fan-out ended before the worker was killed"
            os.kill(worker.pid, signal.SIGKILL)
            assert await exit_code(worker) == -signal.SIGKILL
            return int(row.processed)
        os.kill(worker.pid, signal.SIGCONT)
        await asyncio.sleep(0.01)
    raise AssertionError(f"the worker never got going:\n{worker.output()}")


async def until_done(store: SqlStore, fanout_id: uuid.UUID, within: float) -> Any:
    deadline = time.monotonic() + within
    row = await fanout_row(store, fanout_id)
    while time.monotonic() < deadline:
        row = await fanout_row(store, fanout_id)
        if row.status == "done":
            return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"the fan-out did not finish within {within}s: {row}")


async def test_a_worker_killed_mid_expansion_notifies_every_subscriber_exactly_once(
    own_store: SqlStore, own_database: str, tmp_path: Path
) -> None:
    users = await with_subscribers(own_store)
    accepted = await publish_to_topic(own_store)
    assert accepted["recipients"] == SUBSCRIBERS
    fanout_id = uuid.UUID(accepted["fanout_id"])

    env = tocsin_env(own_database, TOCSIN_FANOUT_BATCH=str(BATCH),
                     TOCSIN_OUTBOX_LEASE_SECONDS=str(LEASE_SECONDS))
    doomed = start_worker(env, tmp_path, "doomed")
    workers = [doomed]
    try:
        at_kill = await kill_halfway(own_store, doomed, fanout_id)
        assert 0 < at_kill < SUBSCRIBERS
        survivor = start_worker(env, tmp_path, "survivor")
        workers.append(survivor)
        row = await until_done(own_store, fanout_id, within=120)
        survivor.process.send_signal(signal.SIGTERM)
        assert await exit_code(survivor) == 0, survivor.output()
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=10)

    assert (row.processed, row.recipients, row.cursor) == (SUBSCRIBERS, SUBSCRIBERS, users[-1])
    async with own_store.engine.connect() as conn:
        counted = (await conn.execute(
            sa.select(notifications.c.user_id, sa.func.count(), sa.func.max(notifications.c.seq))
            .group_by(notifications.c.user_id))).all()
    per_user = {user_id: (count, seq) for user_id, count, seq in counted}
    assert set(per_user) == set(users)
    wrong = {user: found for user, found in per_user.items() if found != (1, 1)}
    assert wrong == {}, f"{len(wrong)} subscribers without exactly one notification"
