"""Configuration mistakes a newcomer makes end in one line, `error: …`, never a traceback."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import run_cli, tocsin_env
from tests.support.services import free_port

pytestmark = pytest.mark.e2e

BANNER = "Tocsin 0.1.0 on"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Non-zero, nothing on stdout from the server, one `error:` line naming `expected`."""
    assert result.returncode not in (0, None), (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert BANNER not in result.stdout, result.stdout
    return lines[0]


def embedded(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The embedded set-up of a first try: no keys nor secret given."""
    env = tocsin_env(database_url, **extra)
    del env["TOCSIN_API_KEYS"], env["TOCSIN_JWT_SECRET"]
    return env


def serve(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tocsin serve` on a free port, expected to stop at once (bounded, in case it does not)."""
    return run_cli("serve", "--port", str(free_port()), *args, env=env, cwd=cwd, timeout=60)


COMMANDS = [("serve",), ("migrate",), ("keys", "list"), ("token", "--user", "ada")]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_malformed_sqlite_url(tmp_path: Path, command: tuple[str, ...]) -> None:
    env = embedded(tmp_path, "sqlite:/tocsin.db")
    result = serve(env, tmp_path) if command == ("serve",) else run_cli(
        *command, env=env, cwd=tmp_path)
    assert_one_line_error(result, "TOCSIN_DATABASE_URL", "'sqlite:/tocsin.db'",
                          "sqlite:///relative/path.db")
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []  # nothing created anywhere


def test_a_sqlite_url_with_a_host(tmp_path: Path) -> None:
    result = run_cli("migrate", env=embedded(tmp_path, "sqlite://tocsin.db"), cwd=tmp_path)
    assert_one_line_error(result, "TOCSIN_DATABASE_URL", "names a host")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_sqlite_file_in_a_directory_that_does_not_exist(tmp_path: Path,
                                                          command: tuple[str, ...]) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    env = embedded(tmp_path, f"sqlite:///{missing / 'tocsin.db'}")
    result = serve(env, tmp_path) if command == ("serve",) else run_cli(
        *command, env=env, cwd=tmp_path)
    assert_one_line_error(result, "TOCSIN_DATABASE_URL", f"directory {missing} does not exist")
    assert result.returncode == 2
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("token", "--user", "ada")],
                         ids=" ".join)
def test_tocsin_config_naming_a_missing_file(tmp_path: Path, command: tuple[str, ...]) -> None:
    named = tmp_path / "tocsin-prod.toml"
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}", TOCSIN_CONFIG=str(named))
    result = serve(env, tmp_path) if command == ("serve",) else run_cli(
        *command, env=env, cwd=tmp_path)
    assert_one_line_error(result, "TOCSIN_CONFIG", str(named), "does not exist")
    assert result.returncode == 2


def test_the_default_tocsin_toml_may_be_absent(tmp_path: Path) -> None:
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}")
    del env["TOCSIN_CONFIG"]
    assert not (tmp_path / "tocsin.toml").exists()
    result = run_cli("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port: int = holder.getsockname()[1]
        yield port


def test_a_port_in_use_stops_serve_before_anything_starts(tmp_path: Path,
                                                          port_in_use: int) -> None:
    env = embedded(tmp_path, f"sqlite:///{tmp_path / 'tocsin.db'}")
    result = run_cli("serve", "--port", str(port_in_use), env=env, cwd=tmp_path, timeout=60)
    assert_one_line_error(result, f"127.0.0.1:{port_in_use}", "already in use", "--port")
    assert result.returncode == 2
    assert "startup" not in result.stdout + result.stderr
    # Bound before anything else: no database, no key, no secret was made.
    assert list(tmp_path.iterdir()) == []


def test_a_port_in_use_stops_serve_with_workers_too(tmp_path: Path, port_in_use: int) -> None:
    # The check comes before the processes start, so no Redis needs to answer here.
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}",
                     TOCSIN_BUS_URL="redis://127.0.0.1:1/0")
    result = run_cli("serve", "--port", str(port_in_use), "--workers", "2", env=env,
                     cwd=tmp_path, timeout=60)
    assert_one_line_error(result, f"127.0.0.1:{port_in_use}", "already in use")


def test_a_host_that_is_not_this_machines(tmp_path: Path) -> None:
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}")
    result = run_cli("serve", "--host", "192.0.2.1", "--port", str(free_port()), env=env,
                     cwd=tmp_path, timeout=60)
    assert_one_line_error(result, "192.0.2.1", "--host")


def test_a_log_level_uvicorn_does_not_know(tmp_path: Path) -> None:
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}")
    result = serve(env, tmp_path, "--log-level", "verbose")
    assert_one_line_error(result, "--log-level", "'verbose'", "debug")


def test_errors_are_plain_lines_when_piped(tmp_path: Path) -> None:
    """No colour codes in a log file or a CI transcript."""
    env = {**embedded(tmp_path, "sqlite:/tocsin.db"), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    result = run_cli("migrate", env=env, cwd=tmp_path)
    assert "\x1b[" not in result.stderr
    assert result.stderr.startswith("error: ")
