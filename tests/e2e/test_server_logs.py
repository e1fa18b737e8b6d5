"""What `tocsin serve` writes to its log: failed sends and dead letters, and the publisher key
in full only on the start that creates it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import PUBLISHER_KEY, new_user
from tests.support.server import ServerProcess, run_cli, tocsin_env, tocsin_server
from tests.support.smtp import SmtpServer, smtp_server

pytestmark = pytest.mark.e2e

HEADERS = {"Authorization": f"Bearer {PUBLISHER_KEY}"}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, smtp: SmtpServer) -> Iterator[ServerProcess]:
    """An in-process worker that retries once, at once, before giving up."""
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}", TOCSIN_SMTP_URL=smtp.url,
                     TOCSIN_OUTBOX_MAX_ATTEMPTS="2", TOCSIN_OUTBOX_BACKOFF_BASE_SECONDS="0.01",
                     TOCSIN_OUTBOX_BACKOFF_CAP_SECONDS="0.01")
    with tocsin_server(env, tmp_path) as running:
        yield running


def email_someone(server: ServerProcess) -> str:
    """Publish an email to a user with an address; the delivery's id once it is dead."""
    user = new_user("mail")
    profile = httpx.put(f"{server.url}/v1/users/{user}", json={"email": "ada@example.com"},
                        headers=HEADERS)
    assert profile.status_code == 200, profile.text
    published = httpx.post(f"{server.url}/v1/notifications", headers=HEADERS,
                           json={"user_id": user, "type": "comment", "title": "Hi",
                                 "channels": ["web", "email"]})
    assert published.status_code == 202, published.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dead = httpx.get(f"{server.url}/v1/admin/dead-letters", headers=HEADERS).json()
        mine = [item["id"] for item in dead["dead_letters"] if item["user_id"] == user]
        if mine:
            return str(mine[0])
        time.sleep(0.05)
    raise TimeoutError(f"no dead letter for {user}:\n{server.output()}")


def line_with(output: str, *parts: str) -> str:
    found = [line for line in output.splitlines() if all(part in line for part in parts)]
    assert len(found) == 1, (parts, output)
    return found[0]


def wait_for_line(server: ServerProcess, *parts: str) -> str:
    """The log line holding every one of `parts` (the log is written as the server runs)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(all(part in line for part in parts) for line in server.output().splitlines()):
            return line_with(server.output(), *parts)
        time.sleep(0.05)
    raise TimeoutError(f"no log line with {parts}:\n{server.output()}")


def test_each_failed_attempt_and_the_dead_letter_are_logged(server: ServerProcess,
                                                            smtp: SmtpServer) -> None:
    smtp.fail("RCPT", "450 4.2.0 mailbox busy", times=None)
    delivery = email_someone(server)
    failed = wait_for_line(server, delivery, "failed")
    assert failed.startswith("WARNING:")
    assert "tocsin.worker" in failed and "(email)" in failed
    assert "attempt 1 of 2" in failed and "mailbox busy" in failed
    assert re.search(r"next attempt at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", failed), failed
    dead = wait_for_line(server, delivery, "dead letter")
    assert dead.startswith("ERROR:")
    assert "attempt 2 of 2" in dead and "mailbox busy" in dead
    assert f"tocsin dead-letters replay {delivery}" in dead


def test_a_permanent_refusal_is_logged_as_a_dead_letter_at_once(server: ServerProcess,
                                                                smtp: SmtpServer) -> None:
    smtp.fail("RCPT", "550 5.1.1 no such user", times=None)
    delivery = email_someone(server)
    dead = wait_for_line(server, delivery, "dead letter")
    assert dead.startswith("ERROR:")
    assert "attempt 1 of 2" in dead and "permanent failure" in dead and "no such user" in dead
    assert not [line for line in server.output().splitlines()
                if delivery in line and "failed, attempt" in line]


def test_the_publisher_key_is_printed_in_full_only_when_it_is_made(tmp_path: Path) -> None:
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}")
    del env["TOCSIN_API_KEYS"]
    with tocsin_server(env, tmp_path) as first:
        key = (tmp_path / "tocsin.key").read_text().strip()
        key_id = key.split("_")[1]
        assert f"publisher key: {key}" in first.output()
        assert "shown this once" in first.output()
    with tocsin_server(env, tmp_path) as second:
        shown = line_with(second.output(), "publisher key:")
    assert key not in second.output()
    assert key.rsplit("_", 1)[1] not in second.output()  # nor its secret part alone
    assert shown == f"publisher key: id {key_id}, kept in {tmp_path / 'tocsin.key'}"
    listed = run_cli("keys", "list", env=env, cwd=tmp_path)  # the id it is stored under
    assert listed.returncode == 0 and key_id in listed.stdout, listed.stderr
