"""A real `tocsin serve` process on a free port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.client import JWT_SECRET, PUBLISHER_KEY
from tests.support.services import free_port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def tocsin_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update({
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_API_KEYS": PUBLISHER_KEY,
        "TOCSIN_JWT_SECRET": JWT_SECRET,
        "TOCSIN_CONFIG": os.devnull,
    })
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tocsin", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def tocsin_server(env: dict[str, str], cwd: Path, *args: str) -> Iterator[ServerProcess]:
    port = free_port()
    log = cwd / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "serve", "--host", "127.0.0.1", "--port",
             str(port), *args],
            env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process=process, url=f"http://127.0.0.1:{port}", log=log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(server: ServerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n"
                               f"{server.output()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server not healthy within {timeout}s:\n{server.output()}")
