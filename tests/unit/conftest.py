"""Unit tests see no TOCSIN_* variable of the machine, and no tocsin.toml but their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TOCSIN_") and not name.startswith("TOCSIN_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TOCSIN_CONFIG", os.devnull)  # an empty TOML file: no setting in it
    monkeypatch.chdir(tmp_path)
