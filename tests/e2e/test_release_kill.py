"""Two `tocsin worker` processes release 300 scheduled notifications on PostgreSQL; one is
killed with SIGKILL while it is releasing, and another joins. Every notification is released
exactly once: one seq per user, the counter exact, no release job left pending."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.test_worker_kill import WorkerProcess, exit_code, start_worker
from tests.support.client import PUBLISHER_KEY, new_user
from tests.support.server import tocsin_env, tocsin_server
from tocsin.jobs.base import RELEASE
from tocsin.store.schema import jobs, notifications, users
from tocsin.store.sql import SqlStore

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TOTAL = 300
LEASE_SECONDS = 3
BATCH = 10  # releases per claim: each worker claims many times, so one dies in the middle
AHEAD = timedelta(seconds=4)  # send_at: time for both workers to start first



async def schedule(env: dict[str, str], cwd: Path, user_ids: list[str]) -> list[uuid.UUID]:
    """One notification to each user, `send_at` a little ahead, through a server's API (one
    that runs no worker of its own)."""
    with tocsin_server({**env, "TOCSIN_WORKER_IN_PROCESS": "false"}, cwd) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            send_at = datetime.now(UTC) + AHEAD
            response = await client.post(
                "/v1/notifications", headers={"Authorization": f"Bearer {PUBLISHER_KEY}"},
                json={"user_ids": user_ids, "type": "comment", "title": "Your report is ready",
                      "send_at": send_at.isoformat()})
    assert response.status_code == 202, response.text
    receipts = response.json()["notifications"]
    assert {r["status"] for r in receipts} == {"scheduled"}, receipts
    return [uuid.UUID(r["id"]) for r in receipts]


async def released(store: SqlStore, ids: list[uuid.UUID]) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(
            sa.select(sa.func.count()).select_from(notifications)
            .where(notifications.c.id.in_(ids), notifications.c.seq.is_not(None)))).scalar_one())


async def release_leases_of(store: SqlStore, pid: int) -> set[uuid.UUID]:
    """Release jobs a worker process holds a lease on and has not finished."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(jobs.c.id).where(jobs.c.kind == RELEASE, jobs.c.status == "pending",
                                       jobs.c.lease_owner.like(f"%:{pid}:%")))).scalars()
        return set(rows)


async def kill_while_releasing(store: SqlStore, worker: WorkerProcess,
                               ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """SIGKILL the worker at a moment it holds release leases and some, not all, of the
    notifications are released; returns the jobs it held.

    The worker is frozen (SIGSTOP) while it is looked at, so it changes nothing meanwhile; when
    it holds nothing (between batches, before the first is due) it is let go and looked at
    again. A statement it sent just before it froze still commits, so what it held is read
    again once the kill has closed its connections."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.output()
        os.kill(worker.pid, signal.SIGSTOP)
        seen = await release_leases_of(store, worker.pid)
        if seen and 0 < await released(store, ids) < TOTAL:
            os.kill(worker.pid, signal.SIGKILL)
            assert await exit_code(worker) == -signal.SIGKILL
            held = seen & await release_leases_of(store, worker.pid)
            assert held, "every release the worker held was finished by a statement in flight"
            return held
        os.kill(worker.pid, signal.SIGCONT)
        await asyncio.sleep(0.005)
    raise AssertionError("the worker was never seen releasing")


async def until_no_release_pending(store: SqlStore, within: float) -> dict[str, int]:
    deadline = time.monotonic() + within
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        async with store.engine.connect() as conn:
            counts = {row.status: int(row.n) for row in (await conn.execute(
                sa.select(jobs.c.status, sa.func.count().label("n"))
                .where(jobs.c.kind == RELEASE).group_by(jobs.c.status))).all()}
        if counts and "pending" not in counts:
            return counts
        await asyncio.sleep(0.25)
    raise AssertionError(f"release jobs still pending after {within}s: {counts}")


async def test_a_killed_worker_releases_every_scheduled_notification_exactly_once(
        own_store: SqlStore, own_database: str, tmp_path: Path) -> None:
    user_ids = [new_user("rel") for _ in range(TOTAL)]
    env = tocsin_env(own_database, TOCSIN_OUTBOX_LEASE_SECONDS=str(LEASE_SECONDS),
                     TOCSIN_OUTBOX_BATCH=str(BATCH))
    doomed = start_worker(env, tmp_path, "doomed")
    survivor = start_worker(env, tmp_path, "survivor")
    workers = [doomed, survivor]
    try:
        ids = await schedule(env, tmp_path, user_ids)
        assert len(set(ids)) == TOTAL
        held = await kill_while_releasing(own_store, doomed, ids)
        late = start_worker(env, tmp_path, "late")  # joins after the kill
        workers.append(late)

        counts = await until_no_release_pending(own_store, within=90)
        for worker in (survivor, late):
            worker.process.send_signal(signal.SIGTERM)
            assert await exit_code(worker) == 0, worker.output()
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=10)

    async with own_store.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(notifications.c.id, notifications.c.user_id, notifications.c.seq,
                      notifications.c.status, notifications.c.read)
            .where(notifications.c.user_id.in_(user_ids)))).all()
        counters = {row.id: row for row in (await conn.execute(
            sa.select(users.c.id, users.c.last_seq, users.c.unread_count)
            .where(users.c.id.in_(user_ids)))).all()}
        release_jobs = (await conn.execute(
            sa.select(jobs).where(jobs.c.kind == RELEASE))).all()

    # Each user has exactly their one notification, released once: seq 1, unread.
    assert len(rows) == TOTAL
    assert {row.id for row in rows} == set(ids)
    assert sorted(row.user_id for row in rows) == sorted(user_ids)
    assert {(row.seq, row.status, row.read) for row in rows} == {(1, "created", False)}
    # Released once means the user's sequence and counter moved once.
    assert set(counters) == set(user_ids)
    assert {(row.last_seq, row.unread_count) for row in counters.values()} == {(1, 1)}

    # One release job per notification, none left pending or dead.
    assert sorted(job.notification_id for job in release_jobs) == sorted(ids)
    assert set(counts) <= {"done", "skipped"}, counts
    by_id = {job.id: job for job in release_jobs}
    # What the dead worker held was taken over once its lease lapsed.
    for job_id in held:
        assert by_id[job_id].attempts >= 2
        assert by_id[job_id].lease_owner is None
    # A release found already done (skipped) can only be one the dead worker had committed
    # but not recorded.
    skipped = {job.id for job in release_jobs if job.status == "skipped"}
    assert skipped <= held, skipped - held
