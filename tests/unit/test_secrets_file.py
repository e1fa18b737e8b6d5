"""The JWT secret: configured, or generated once beside a SQLite file and kept private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tocsin.auth.secrets_file import resolve_jwt_secret
from tocsin.domain.errors import SettingsError
from tocsin.settings import Settings

CONFIGURED = "c" * 40


def test_sqlite_secret_is_generated_beside_the_database_once(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/data/notify.db")
    (tmp_path / "data").mkdir()
    secret = resolve_jwt_secret(settings)
    path = tmp_path / "data" / "notify.jwt-secret"
    assert path.read_text().strip() == secret
    assert len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_jwt_secret(settings) == secret
    assert resolve_jwt_secret(Settings(database_url=f"sqlite:///{tmp_path}/data/notify.db")
                              ) == secret


def test_each_database_gets_its_own_secret(tmp_path: Path) -> None:
    one = resolve_jwt_secret(Settings(database_url=f"sqlite:///{tmp_path}/one.db"))
    two = resolve_jwt_secret(Settings(database_url=f"sqlite:///{tmp_path}/two.db"))
    assert one != two


def test_configured_secret_wins_and_writes_no_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/t.db", jwt_secret=CONFIGURED)
    assert resolve_jwt_secret(settings) == CONFIGURED
    assert list(tmp_path.iterdir()) == []


def test_in_memory_sqlite_gets_a_fresh_secret_and_no_file(tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite:///:memory:")
    first, second = resolve_jwt_secret(settings), resolve_jwt_secret(settings)
    assert len(first) >= 32 and first != second
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["postgresql://tocsin@db/tocsin", "postgres://db/tocsin"])
def test_postgresql_without_secret_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError) as raised:
        resolve_jwt_secret(Settings(database_url=url))
    assert "TOCSIN_JWT_SECRET" in raised.value.message
    assert resolve_jwt_secret(Settings(database_url=url, jwt_secret=CONFIGURED)) == CONFIGURED
