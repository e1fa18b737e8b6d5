"""A real `tocsin serve` process on a throwaway database, for the benchmarks.

`sqlite_database` and `postgres_database` make the database and remove it afterwards;
`running_server` starts `python -m tocsin serve` on a free loopback port, waits for /healthz,
and stops it with SIGTERM (SIGKILL if it has not exited within 10 s). `python` is this
interpreter unless given, e.g. a baseline build's (bench/baseline.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0
DEFAULT_PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True, slots=True)
class Database:
    """A database the server can use: its URL, and how to count the notifications stored in it."""

    backend: str
    url: str
    count_notifications: Callable[[], Awaitable[int]]
    postgres_name: str | None = None  # the database's name on a PostgreSQL server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _sqlite_count(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        row = conn.execute("SELECT count(*) FROM notifications").fetchone()
    return int(row[0])


@asynccontextmanager
async def sqlite_database(workdir: Path) -> AsyncIterator[Database]:
    """A SQLite file in `workdir` (the caller's temporary directory removes it)."""
    path = workdir / "bench.db"

    async def count() -> int:
        return await asyncio.to_thread(_sqlite_count, path)

    yield Database(backend="sqlite", url=f"sqlite:///{path}", count_notifications=count)


async def postgres_version(admin_dsn: str) -> str | None:
    """The server's version string, or None (with the reason on stderr) if it is unreachable."""
    try:
        import asyncpg
    except ImportError:
        print("PostgreSQL: asyncpg is not installed (pip install 'tocsin[postgres]')",
              file=sys.stderr)
        return None
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL is unreachable at {admin_dsn}: {exc}", file=sys.stderr)
        return None
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@asynccontextmanager
async def postgres_database(admin_dsn: str = DEFAULT_PG_ADMIN_DSN) -> AsyncIterator[Database]:
    """A fresh database `tocsin_bench_<random>`, dropped afterwards."""
    import asyncpg

    name = f"tocsin_bench_{secrets.token_hex(6)}"
    url = _with_database(admin_dsn, name)
    admin = await asyncpg.connect(admin_dsn, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    async def count() -> int:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            found: int = await conn.fetchval("SELECT count(*) FROM notifications")
            return found
        finally:
            await conn.close()

    try:
        yield Database(backend="postgres", url=url, count_notifications=count,
                       postgres_name=name)
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass(slots=True)
class Server:
    process: asyncio.subprocess.Process
    base_url: str
    api_key: str
    log_path: Path
    jwt_secret: str = ""  # what user tokens must be signed with (TOCSIN_JWT_SECRET)
    killed: bool = False  # SIGKILLed on purpose (kill()): its exit code is no failure

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    async def kill(self) -> int:
        """SIGKILL now, as a crash would end it; returns the exit code once it has exited."""
        self.killed = True
        if self.process.returncode is None:
            self.process.kill()
        return await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT seconds; returns the exit code."""
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            print(f"server {self.pid} did not stop within {STOP_TIMEOUT:.0f} s: killing it",
                  file=sys.stderr)
            self.process.kill()
            return await self.process.wait()


def server_env(database_url: str, workdir: Path, api_key: str, jwt_secret: str
               ) -> dict[str, str]:
    """This environment without any TOCSIN_* setting, plus exactly the benchmark's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update({
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_API_KEYS": api_key,
        "TOCSIN_JWT_SECRET": jwt_secret,
        # a tocsin.toml in the caller's directory must not change what is measured
        "TOCSIN_CONFIG": os.devnull,
    })
    return env


async def wait_healthy(server: Server, within: float, path: str = "/healthz") -> None:
    """Until GET `path` answers 200; raises if the process exits or `within` seconds pass."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                raise RuntimeError(f"the server exited with {server.process.returncode} during "
                                   f"start-up:\n{server.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{server.base_url}{path}") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not answer {path} within {within:.0f} s:\n"
                       f"{server.log_tail()}")


def _open_log(path: Path) -> BinaryIO:
    return path.open("wb")


@asynccontextmanager
async def running_server(database: Database, workdir: Path, *, startup_timeout: float = 60.0,
                         extra_env: dict[str, Any] | None = None,
                         launcher: Sequence[str] = ("-m", "tocsin"),
                         api_key: str | None = None, jwt_secret: str | None = None,
                         python: str = sys.executable, port: int | None = None,
                         ) -> AsyncIterator[Server]:
    """`python -m tocsin serve` on a free port of 127.0.0.1, healthy, stopped on exit.

    `python` is the interpreter that runs it, so the Tocsin it imports is the one installed
    beside it (another build's virtualenv, for a baseline); another interpreter than this one
    gets no PYTHONPATH, which could make it import this tree's code.

    `launcher` replaces `-m tocsin` (e.g. a wrapper script that profiles, then calls
    `tocsin.cli.main()`); it must keep the process's pid, since CPU is read from /proc/<pid>.
    `extra_env` adds settings (e.g. TOCSIN_BUS_URL); `api_key` and `jwt_secret` are random
    unless given (several nodes of one deployment share them). `port` is a free one unless
    given (a server started again where a killed one listened).
    """
    api_key = api_key or secrets.token_hex(16)  # 32 characters
    jwt_secret = jwt_secret or secrets.token_urlsafe(36)  # 48 characters
    port = port or free_port()
    env = server_env(database.url, workdir, api_key, jwt_secret)
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    if python != sys.executable:
        env.pop("PYTHONPATH", None)
    log_path = workdir / f"server-{database.backend}-{port}.log"
    log = _open_log(log_path)
    try:
        process = await asyncio.create_subprocess_exec(
            python, *launcher, "serve", "--host", HOST, "--port", str(port),
            "--log-level", "warning",
            env=env, cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    finally:
        log.close()  # the child has its own copy
    server = Server(process=process, base_url=f"http://{HOST}:{port}", api_key=api_key,
                    log_path=log_path, jwt_secret=jwt_secret)
    try:
        await wait_healthy(server, within=startup_timeout)
        yield server
    finally:
        code = await server.stop()
        if code not in (0, -signal.SIGTERM) and not server.killed:
            print(f"server exited with {code}:\n{server.log_tail()}", file=sys.stderr)
