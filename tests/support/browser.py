"""Chromium through Playwright, the way every browser test here launches it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.services import missing

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = os.environ.get("TOCSIN_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 10_000  # every wait in a page; live events take milliseconds


def _chromium() -> str:
    """The system's Chromium (Playwright never downloads one here)."""
    if not Path(CHROMIUM).is_file():
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A running Chromium; each test opens its own context (its own tabs) in it."""
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        missing("Playwright is not installed (pip install -e '.[dev]')")
    executable = _chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable,
                                                   args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            await browser.close()
