"""`tocsin worker` and `tocsin dead-letters list|replay` as an operator runs them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.client import new_user
from tests.support.jobs import ids_of, job_row, job_rows, publish_email
from tests.support.server import run_cli, tocsin_env
from tests.support.services import wait_for
from tests.support.smtp import SmtpServer, smtp_server
from tocsin.domain.models import UserProfile
from tocsin.jobs.base import DELIVERY
from tocsin.jobs.sql import SqlJobs
from tocsin.store.sql import SqlStore

pytestmark = pytest.mark.e2e

ERROR = "SMTP [SMTPRecipientRefused(550, '5.1.1 no such user', 'x@example.com')]"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A database of this test's own: a worker takes every due delivery it finds."""
    return f"sqlite:///{tmp_path / 'tocsin.db'}"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def dead_letters(database_url: str, count: int) -> list[uuid.UUID]:
    """Queue `count` emails and make each a dead letter, as a worker would after a 550."""
    async def work() -> list[uuid.UUID]:
        store = SqlStore(database_url)
        try:
            await store.migrate()
            now = datetime.now(UTC)
            await publish_email(store, [new_user("cli") for _ in range(count)], now)
            queue = SqlJobs(store.db)
            claimed = await queue.claim([DELIVERY], "cli-test", now, 60, count)
            for job in claimed:
                assert await queue.bury(job, now, ERROR)
            return [job.id for job in claimed]
        finally:
            await store.close()

    return asyncio.run(work())


def status_of(database_url: str, delivery_id: uuid.UUID) -> tuple[str, int]:
    async def work() -> tuple[str, int]:
        store = SqlStore(database_url)
        try:
            row = await job_row(store, delivery_id)
            return str(row.status), int(row.attempts)
        finally:
            await store.close()

    return asyncio.run(work())


def lines_of(listing: str) -> list[list[str]]:
    return [line.split("\t") for line in listing.splitlines()]


def test_list_shows_each_dead_letter_whole(database_url: str, tmp_path: Path) -> None:
    first, second = dead_letters(database_url, 2)
    env = tocsin_env(database_url)
    listed = run_cli("dead-letters", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *rows = lines_of(listed.stdout)
    assert header == ["id", "channel", "user", "attempts", "last_error"]
    by_id = {row[0]: row for row in rows}
    assert set(by_id) == {str(first), str(second)}
    for row in by_id.values():
        assert row[1] == "email"
        assert row[2].startswith("cli-")
        assert row[3] == "1"
        assert row[4] == ERROR

    one = run_cli("dead-letters", "list", "--limit", "1", env=env, cwd=tmp_path)
    assert len(lines_of(one.stdout)) == 2


def test_list_with_no_dead_letters_prints_only_the_header(database_url: str,
                                                          tmp_path: Path) -> None:
    listed = run_cli("dead-letters", "list", env=tocsin_env(database_url), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["id\tchannel\tuser\tattempts\tlast_error"]


def test_replay_queues_the_dead_letter_again(database_url: str, tmp_path: Path) -> None:
    replayed, kept = dead_letters(database_url, 2)
    env = tocsin_env(database_url)
    result = run_cli("dead-letters", "replay", str(replayed), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"queued {replayed} again" in result.stdout
    assert status_of(database_url, replayed) == ("pending", 0)
    assert status_of(database_url, kept) == ("dead", 1)
    listed = run_cli("dead-letters", "list", env=env, cwd=tmp_path)
    assert [row[0] for row in lines_of(listed.stdout)[1:]] == [str(kept)]

    again = run_cli("dead-letters", "replay", str(replayed), env=env, cwd=tmp_path)
    assert again.returncode == 1
    assert "no dead letter with this id" in again.stderr
    assert status_of(database_url, replayed) == ("pending", 0)


def test_replay_of_a_malformed_id_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    [dead] = dead_letters(database_url, 1)
    env = tocsin_env(database_url)
    bad = run_cli("dead-letters", "replay", "not-a-uuid", env=env, cwd=tmp_path)
    assert bad.returncode == 2
    assert "'not-a-uuid' is not a delivery id" in bad.stderr
    unknown = run_cli("dead-letters", "replay", str(uuid.uuid4()), env=env, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no dead letter with this id" in unknown.stderr
    assert status_of(database_url, dead) == ("dead", 1)


def test_worker_without_an_smtp_url_expands_fanouts_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    users = [f"{new_user('cli')}-{i}" for i in range(3)]

    async def publish_to_topic() -> uuid.UUID:
        store = SqlStore(database_url)
        try:
            await store.migrate()
            now = datetime.now(UTC)
            await store.subscribe("cli-topic", users, now)
            request = {"type": "comment", "data": {}, "title": "To the topic"}
            started = await store.start_fanout("cli-topic", "cli", request, [], now, 3600)
            return started.fanout_id
        finally:
            await store.close()

    async def fanout_status(fanout_id: uuid.UUID) -> tuple[str, int]:
        store = SqlStore(database_url)
        try:
            found = await store.fanout(fanout_id)
            return found.status, found.processed
        finally:
            await store.close()

    fanout_id = asyncio.run(publish_to_topic())
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, "-m", "tocsin", "worker"],
                                  env=tocsin_env(database_url), cwd=tmp_path, stdout=sink,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: asyncio.run(fanout_status(fanout_id)) == ("done", 3), timeout=30,
                 interval=0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert "channels none (set TOCSIN_SMTP_URL to send email)" in log.read_text()
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://mail.example.com:99999"])
def test_worker_with_a_malformed_smtp_url_says_so(database_url: str, tmp_path: Path,
                                                  url: str) -> None:
    env = tocsin_env(database_url, TOCSIN_SMTP_URL=url)
    result = run_cli("worker", env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert "TOCSIN_SMTP_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_sends_what_is_queued_and_stops_on_sigterm(
    database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    users = [new_user("cli") for _ in range(5)]

    async def queue() -> list[uuid.UUID]:
        store = SqlStore(database_url)
        try:
            await store.migrate()
            now = datetime.now(UTC)
            for user in users:
                await store.put_user(UserProfile(id=user, email=f"{user}@example.com"), now)
            return ids_of(await publish_email(store, users, now))
        finally:
            await store.close()

    async def statuses(notification_ids: list[uuid.UUID]) -> set[str]:
        store = SqlStore(database_url)
        try:
            return {str(row.status) for row in await job_rows(store, notification_ids)}
        finally:
            await store.close()

    notification_ids = asyncio.run(queue())
    env = tocsin_env(database_url, TOCSIN_SMTP_URL=smtp.url)
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, "-m", "tocsin", "worker"], env=env,
                                  cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    try:
        received = smtp.wait_for_messages(5, timeout=30)
        wait_for(lambda: asyncio.run(statuses(notification_ids)) == {"done"}, timeout=15,
                 interval=0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(f"{u}@example.com" for u in users)
    assert "channels email" in log.read_text()


def test_worker_logs_failed_attempts_and_dead_letters(
    database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    smtp.fail("RCPT", "450 4.2.0 mailbox busy", times=None)
    user = new_user("cli")

    async def queue() -> None:
        store = SqlStore(database_url)
        try:
            await store.migrate()
            now = datetime.now(UTC)
            await store.put_user(UserProfile(id=user, email=f"{user}@example.com"), now)
            await publish_email(store, [user], now)
        finally:
            await store.close()

    asyncio.run(queue())
    env = tocsin_env(database_url, TOCSIN_SMTP_URL=smtp.url, TOCSIN_OUTBOX_MAX_ATTEMPTS="2",
                     TOCSIN_OUTBOX_BACKOFF_BASE_SECONDS="0.01",
                     TOCSIN_OUTBOX_BACKOFF_CAP_SECONDS="0.01")
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, "-m", "tocsin", "worker"], env=env,
                                  cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "dead letter" in log.read_text(), timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    lines = log.read_text().splitlines()
    [failed] = [line for line in lines if "failed, attempt" in line]
    [dead] = [line for line in lines if "dead letter" in line]
    assert failed.startswith("WARNING:") and "attempt 1 of 2" in failed
    assert "mailbox busy" in failed and "next attempt at" in failed
    assert dead.startswith("ERROR:") and "attempt 2 of 2" in dead
