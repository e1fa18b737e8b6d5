"""The `tocsin` command as an operator uses it, against a real server."""

from __future__ import annotations

import os
import re
import stat
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
                               json={"user_id": user, "type": "hello"},
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
        body = {"user_id": new_user(), "type": "hello"}
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
