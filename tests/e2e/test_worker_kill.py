"""Two `tocsin worker` processes share 2,000 emails on PostgreSQL; one is killed with SIGKILL in
the middle. No email is lost, and the only duplicates are re-sends of one delivery (same
Message-ID) whose lease the dead worker held."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.client import new_user
from tests.support.jobs import ids_of, job_rows, publish_email
from tests.support.server import tocsin_env
from tests.support.smtp import SmtpServer, smtp_server
from tocsin.domain.models import UserProfile
from tocsin.jobs.base import DELIVERY
from tocsin.store.schema import jobs
from tocsin.store.sql import SqlStore

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TOTAL = 2000
PER_REQUEST = 100
LEASE_SECONDS = 3
BATCH = 25


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(env: dict[str, str], cwd: Path, name: str) -> WorkerProcess:
    log = cwd / f"worker-{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "tocsin", "worker"], env=env, cwd=cwd,
                                   stdout=sink, stderr=subprocess.STDOUT)
    return WorkerProcess(process=process, log=log)


async def exit_code(worker: WorkerProcess, within: float = 15) -> int | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        code = worker.process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    return None



@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


async def queue_emails(store: SqlStore) -> list[uuid.UUID]:
    """2,000 users with an email address, one notification each, published 100 at a time."""
    now = datetime.now(UTC)
    users = [new_user("kill") for _ in range(TOTAL)]
    for start in range(0, TOTAL, 50):
        await asyncio.gather(*(store.put_user(UserProfile(id=u, email=f"{u}@example.com"), now)
                               for u in users[start:start + 50]))
    notification_ids: list[uuid.UUID] = []
    for start in range(0, TOTAL, PER_REQUEST):
        outcome = await publish_email(store, users[start:start + PER_REQUEST], now,
                                      title=f"Report {start // PER_REQUEST}")
        notification_ids += ids_of(outcome)
    return notification_ids


async def leases_of(store: SqlStore, pid: int) -> set[uuid.UUID]:
    """Deliveries a worker process holds a lease on and has not finished."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(jobs.c.id).where(jobs.c.status == "pending",
                                       jobs.c.lease_owner.like(f"%:{pid}:%"))
        )).scalars()
        return set(rows)


async def kill_while_holding_leases(store: SqlStore, worker: WorkerProcess) -> set[uuid.UUID]:
    """SIGKILL the worker at a moment it holds leases; returns what it held.

    The worker is frozen (SIGSTOP) while its leases are read, so it sends nothing more;
    between batches it may hold few or none, so it is let go and tried again. A statement it
    sent just before it froze (the UPDATE that marks a batch done) still commits on the
    server, so what it held is read again once the kill has closed its connections: far
    inside the lease, so nothing has taken a delivery over yet."""
    for _ in range(200):
        os.kill(worker.pid, signal.SIGSTOP)
        seen = await leases_of(store, worker.pid)
        if len(seen) >= BATCH // 5:  # a batch under way, not the last job of one
            os.kill(worker.pid, signal.SIGKILL)
            assert await exit_code(worker) == -signal.SIGKILL
            await asyncio.sleep(LEASE_SECONDS / 6)
            held = seen & await leases_of(store, worker.pid)
            assert held, "every delivery the worker held was finished by a statement in flight"
            return held
        os.kill(worker.pid, signal.SIGCONT)
        await asyncio.sleep(0.01)
    raise AssertionError("the worker never held a lease when looked at")


async def until_all_sent(store: SqlStore, smtp: SmtpServer, within: float) -> dict[str, int]:
    """Until every delivery is done (the workers' own periodic sweeps are not counted)."""
    deadline = time.monotonic() + within
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(jobs.c.status, sa.func.count()).where(jobs.c.kind == DELIVERY)
                .group_by(jobs.c.status))).all()
        counts = {str(status): int(count) for status, count in rows}
        if counts == {"done": TOTAL}:
            return counts
        await asyncio.sleep(0.25)
    raise AssertionError(f"jobs not finished within {within}s: {counts}; "
                         f"{len(smtp.messages)} messages received")


async def test_a_killed_worker_loses_no_email_and_resends_only_what_it_held(
    own_store: SqlStore, smtp: SmtpServer, own_database: str, tmp_path: Path
) -> None:
    notification_ids = await queue_emails(own_store)
    env = tocsin_env(own_database, TOCSIN_SMTP_URL=smtp.url,
                     TOCSIN_OUTBOX_LEASE_SECONDS=str(LEASE_SECONDS),
                     TOCSIN_OUTBOX_BATCH=str(BATCH))
    doomed = start_worker(env, tmp_path, "doomed")
    survivor = start_worker(env, tmp_path, "survivor")
    late: WorkerProcess | None = None
    workers = [doomed, survivor]
    try:
        await smtp.until_messages(TOTAL // 10, within=60)
        held = await kill_while_holding_leases(own_store, doomed)
        late = start_worker(env, tmp_path, "late")  # joins after the kill
        workers.append(late)

        await until_all_sent(own_store, smtp, within=90)
        for worker in (survivor, late):
            worker.process.send_signal(signal.SIGTERM)
            assert await exit_code(worker) == 0, worker.output()
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=10)

    rows = {row.notification_id: row for row in await job_rows(own_store, notification_ids)}
    assert len(rows) == TOTAL
    assert {row.status for row in rows.values()} == {"done"}
    by_delivery = {row.id: row for row in rows.values()}

    # Every delivery the dead worker held was taken over once its lease lapsed, and sent.
    for delivery_id in held:
        assert by_delivery[delivery_id].attempts >= 2
        assert by_delivery[delivery_id].lease_owner is None

    # Every email arrived; each copy of one notification carries its delivery's Message-ID.
    copies: dict[uuid.UUID, list[str]] = defaultdict(list)
    for message in smtp.messages:
        copies[uuid.UUID(str(message.email["X-Tocsin-Notification"]))].append(message.message_id)
    assert set(copies) == set(notification_ids)
    for notification_id, message_ids in copies.items():
        assert set(message_ids) == {f"<{rows[notification_id].id}@tocsin>"}, message_ids
    assert len({mid for mids in copies.values() for mid in mids}) == TOTAL

    # Duplicates only from re-sending a delivery the dead worker held (it sent it, then died
    # before recording it): few, and each one a delivery that was claimed again.
    duplicated = {rows[n].id for n, mids in copies.items() if len(mids) > 1}
    assert duplicated <= held, duplicated - held
    assert sum(len(mids) - 1 for mids in copies.values()) <= len(held) <= BATCH
