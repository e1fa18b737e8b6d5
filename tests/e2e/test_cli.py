"""The `tocsin` command as an operator uses it, against a real server."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.client import counted, new_user
from tests.support.server import run_cli, tocsin_env, tocsin_server

pytestmark = pytest.mark.e2e


def _embedded_env(tmp_path: Path) -> dict[str, str]:
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}")
    del env["TOCSIN_API_KEYS"], env["TOCSIN_JWT_SECRET"]
    return env


def test_embedded_serve_keeps_its_key_and_secret_across_restarts(tmp_path: Path) -> None:
    env = _embedded_env(tmp_path)
    user = new_user()
    with tocsin_server(env, tmp_path) as server:
        key = (tmp_path / "tocsin.key").read_text().strip()
        assert key in server.output()
        token = run_cli("token", "--user", user, env=env, cwd=tmp_path).stdout.strip()
        published = httpx.post(f"{server.url}/v1/notifications",
                               json={"user_id": user, "type": "hello", "title": "Hello"},
                               headers={"Authorization": f"Bearer {key}"})
        assert published.status_code == 202, published.text
    for name in ("tocsin.key", "tocsin.jwt-secret"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    with tocsin_server(env, tmp_path) as server:
        assert (tmp_path / "tocsin.key").read_text().strip() == key
        count = httpx.get(f"{server.url}/v1/me/unread-count",
                          headers={"Authorization": f"Bearer {token}"})
        assert counted(count.json()) == {"count": 1, "seq": 1}


def test_keys_create_list_revoke(database_url: str, tmp_path: Path) -> None:
    env = tocsin_env(database_url, TOCSIN_API_KEY_CACHE_SECONDS="0")
    created = run_cli("keys", "create", "--name", "billing", env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = re.search(r"key: (tsk_\S+)", created.stdout)
    key_id = re.search(r"id:\s+(\S+)", created.stdout)
    assert key and key_id
    listed = run_cli("keys", "list", env=env, cwd=tmp_path)
    assert key_id.group(1) in listed.stdout and "billing" in listed.stdout
    assert key.group(1) not in listed.stdout
    with tocsin_server(env, tmp_path) as server:
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        body = {"user_id": new_user(), "type": "hello", "title": "Hello"}
        ok = httpx.post(f"{server.url}/v1/notifications", json=body, headers=headers)
        assert ok.status_code == 202
        revoked = run_cli("keys", "revoke", key_id.group(1), env=env, cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        refused = httpx.post(f"{server.url}/v1/notifications", json=body, headers=headers)
        assert refused.status_code == 401
    missing = run_cli("keys", "revoke", "no-such-key", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no-such-key" in missing.stderr


def test_send_and_token(database_url: str, tmp_path: Path) -> None:
    env = tocsin_env(database_url)
    user = new_user()
    with tocsin_server(env, tmp_path) as server:
        sent = run_cli("send", "--user", user, "--type", "mention", "--title", "Hi",
                       "--message", "there", "--data", '{"k": 1}', "--url", server.url,
                       "--key", env["TOCSIN_API_KEYS"], env=env, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        assert "seq 1" in sent.stdout
        token = run_cli("token", "--user", user, env=env, cwd=tmp_path).stdout.strip()
        listed = httpx.get(f"{server.url}/v1/me/notifications",
                           headers={"Authorization": f"Bearer {token}"}).json()
        (item,) = listed["notifications"]
        assert (item["type"], item["title"], item["message"], item["data"]) == (
            "mention", "Hi", "there", {"k": 1})
        bad = run_cli("send", "--user", user, "--type", "x", "--data", "{nope", "--url",
                      server.url, env=env, cwd=tmp_path)
        assert bad.returncode == 2 and "--data" in bad.stderr


def test_migrate_reports_an_unreachable_database(tmp_path: Path) -> None:
    env = tocsin_env("postgresql://postgres@127.0.0.1:1/none",
                     TOCSIN_DB_CONNECT_TIMEOUT="2")
    result = run_cli("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "database" in result.stderr.lower()


def test_version(tmp_path: Path) -> None:
    result = run_cli("--version", env=tocsin_env(f"sqlite:///{tmp_path / 't.db'}"), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "tocsin 0.1.0\n")


def test_importing_the_cli_loads_no_framework() -> None:
    """`tocsin --help` must not wait for FastAPI, SQLAlchemy and uvicorn to load."""
    check = ("import sys, tocsin.cli; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'fastapi', 'sqlalchemy', 'uvicorn', 'starlette', 'httpx'}))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("user", "why"), [
    ("", "must not be empty"),
    ("a" * 256, "longer than 255"),
    ("ada\x01", "control characters"),
    ("ada\nbob", "control characters"),
])
def test_token_refuses_a_user_id_the_api_would_refuse(tmp_path: Path, user: str,
                                                      why: str) -> None:
    result = run_cli("token", "--user", user, env=tocsin_env(f"sqlite:///{tmp_path / 't.db'}"),
                     cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --user ") and why in line


@pytest.mark.parametrize("ttl", ["0", "-5", "121"])
def test_token_refuses_a_lifetime_out_of_bounds(tmp_path: Path, ttl: str) -> None:
    env = tocsin_env(f"sqlite:///{tmp_path / 't.db'}", TOCSIN_MAX_TOKEN_TTL_SECONDS="120")
    result = run_cli("token", "--user", "ada", "--ttl", ttl, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line == (f"error: --ttl must be between 1 and 120 seconds "
                    f"(TOCSIN_MAX_TOKEN_TTL_SECONDS), got {ttl}")


def test_a_token_within_the_bounds_is_accepted_by_the_server(tmp_path: Path) -> None:
    env = tocsin_env(f"sqlite:///{tmp_path / 't.db'}", TOCSIN_MAX_TOKEN_TTL_SECONDS="120")
    minted = run_cli("token", "--user", "ada lovelace ✓", "--ttl", "120", env=env, cwd=tmp_path)
    assert minted.returncode == 0, minted.stderr
    with tocsin_server(env, tmp_path) as server:
        count = httpx.get(f"{server.url}/v1/me/unread-count",
                          headers={"Authorization": f"Bearer {minted.stdout.strip()}"})
    assert count.status_code == 200, count.text


def test_send_options(database_url: str, tmp_path: Path) -> None:
    env = tocsin_env(database_url)
    ada, bob = new_user("ada"), new_user("bob")
    with tocsin_server(env, tmp_path) as server:
        def send(*args: str) -> subprocess.CompletedProcess[str]:
            return run_cli("send", "--type", "mention", "--url", server.url, *args, env=env,
                           cwd=tmp_path)

        both = send("--user-ids", f"{ada},{bob}", "--priority", "high", "--channels", "web",
                    "--idempotency-key", "mention-1")
        assert both.returncode == 0, both.stderr
        assert [line.split()[3] for line in both.stdout.splitlines()] == [ada, bob]
        again = send("--user-ids", f"{ada},{bob}", "--priority", "high", "--channels", "web",
                     "--idempotency-key", "mention-1")
        assert again.returncode == 0, again.stderr
        assert "already stored with this Idempotency-Key" in again.stdout
        assert again.stdout.splitlines()[1:] == both.stdout.splitlines()
        for user in (ada, bob):
            token = run_cli("token", "--user", user, env=env, cwd=tmp_path).stdout.strip()
            listed = httpx.get(f"{server.url}/v1/me/notifications",
                               headers={"Authorization": f"Bearer {token}"}).json()
            assert [n["priority"] for n in listed["notifications"]] == ["high"]

        refused = send("--user", ada, "--channels", "web,email")  # no TOCSIN_SMTP_URL here
        assert refused.returncode == 1
        [line] = refused.stderr.splitlines()
        assert line.startswith("error: 422 validation_error: ") and "email" in line
        assert "{" not in line  # the API's message, not its JSON

    neither = run_cli("send", "--type", "x", "--url", server.url, env=env, cwd=tmp_path)
    both_ways = run_cli("send", "--type", "x", "--user", ada, "--user-ids", bob, "--url",
                        server.url, env=env, cwd=tmp_path)
    for result in (neither, both_ways):
        assert result.returncode == 2
        assert "--user" in result.stderr and "--user-ids" in result.stderr
