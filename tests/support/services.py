"""Reaching the machine's services, and starting private ones a test may stop or kill.

In CI (`CI=true`) a missing service fails the test; elsewhere it skips, and the session's
summary says plainly what was skipped and why.
"""

from __future__ import annotations

import asyncio
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from tocsin.bus.redis import RedisBus
    from tocsin.limits.redis import RedisRateLimiter

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get(
    "TOCSIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TOCSIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MISSING: set[str] = set()


def missing(what: str) -> NoReturn:
    """Fail in CI, skip elsewhere (and remember why, for the summary)."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing service fails the run)", pytrace=False)
    MISSING.add(what)
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_postgres_database(admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """A new, empty database for this run, dropped afterwards."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        missing("asyncpg is not installed (pip install 'tocsin[postgres]')")
    name = f"tocsin_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        missing(f"PostgreSQL is not reachable at {admin_url}: {exc}")
    try:
        yield _with_database(admin_url, name)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def redis_reachable(url: str = REDIS_URL) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def redis_bus(url: str = REDIS_URL) -> RedisBus:
    """A Redis bus on the machine's Redis, or the test fails (CI) or skips (elsewhere)."""
    if not redis_reachable(url):
        missing(f"Redis is not reachable at {url}")
    from tocsin.bus.redis import RedisBus

    return RedisBus(url)


def redis_limiter(url: str = REDIS_URL, *, timeout: float = 5.0) -> RedisRateLimiter:
    """A Redis rate limiter on the machine's Redis, or the test fails (CI) or skips. Its
    timeout is generous: on a loaded machine a short one would fail open and miscount."""
    if not redis_reachable(url):
        missing(f"Redis is not reachable at {url}")
    from tocsin.limits.redis import RedisRateLimiter

    return RedisRateLimiter(url, timeout=timeout)


@dataclass
class PrivateRedis:
    """A redis-server of this test's own, on a free port, that the test may stop and restart."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: redis_reachable(self.url), timeout=10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server hangs, connections stay open and nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def unpause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        missing("redis-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="tocsin-redis-"))
    server = PrivateRedis(port=free_port(), directory=directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.directory, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of this test's own, on a free port, in a temporary directory."""

    data_dir: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        ctl = _pg_bin("pg_ctl")
        assert ctl
        _as_postgres([ctl, "-D", str(self.data_dir), "-l", str(self.log), "-w", *args])

    def start(self) -> None:
        (self.data_dir / "standby.signal").unlink(missing_ok=True)
        self._ctl("-o", f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1",
                  "start")

    def start_refusing(self) -> None:
        """Start as a standby with hot standby off: it stays up, answering every connection
        with "the database system is not accepting connections" (SQLSTATE 57P03, the error
        of a server that is still starting up), until stopped and started normally."""
        (self.data_dir / "standby.signal").write_text("")
        self._ctl("-o", f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
                        "-c hot_standby=off", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


def _as_postgres(command: list[str]) -> None:
    # initdb and postgres refuse to run as root; run them as the postgres user if we are root.
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    initdb = _pg_bin("initdb")
    if initdb is None or _pg_bin("pg_ctl") is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="tocsin-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    _as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync"])
    server = PrivatePostgres(data_dir=data, port=free_port(), log=root / "server.log")
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_for(predicate: object, timeout: float = 15.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")
