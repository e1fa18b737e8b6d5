"""Secrets an embedded server keeps beside its SQLite file, so they survive restarts."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from tocsin.domain.errors import SettingsError
from tocsin.settings import Settings
from tocsin.store.engine import sqlite_path


def beside_database(settings: Settings, suffix: str) -> Path | None:
    """`tocsin.db` → `tocsin.<suffix>` in the same directory; None unless SQLite on a file."""
    path = sqlite_path(settings.database_url)
    return None if path is None else path.with_name(f"{path.stem}.{suffix}")


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The file's content, creating it with 0600 permissions if absent (race-safe).

    It lives beside the database, so a path that cannot be written is a database setting the
    operator has to fix: that is what the error says, not a traceback."""
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
    except FileNotFoundError:
        raise SettingsError(
            f"TOCSIN_DATABASE_URL: directory {path.parent} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"TOCSIN_DATABASE_URL: cannot use {path} beside the database: "
                            f"{exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as handle:
        value = make()
        handle.write(value + "\n")
    return value


def resolve_jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if not settings.is_sqlite:
        raise SettingsError(
            "TOCSIN_JWT_SECRET must be set when the database is not a local SQLite file: "
            "every node has to verify the same tokens"
        )
    path = beside_database(settings, "jwt-secret")
    if path is None:  # in-memory SQLite lives as long as the process, and so does this secret
        return secrets.token_urlsafe(48)
    return read_or_create(path, lambda: secrets.token_urlsafe(48))
