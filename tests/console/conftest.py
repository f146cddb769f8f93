"""Fixtures of the console tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.support import drop_console_login, ensure_console_login
from tests.runtime.conftest import conn, runtime_db, start_worker

__all__ = ["conn", "console_login", "runtime_db", "start_worker"]


@pytest.fixture(scope="session")
def console_login(admin_url: str, template_db: str) -> Iterator[None]:
    """The console's login role exists on the server (dropped when the session ends)."""
    ensure_console_login(admin_url)
    yield
    drop_console_login(admin_url)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a browser Playwright downloads). Skips
    when chromium is absent, unless DRAGONFLY_REQUIRE_BROWSER=1 (CI), which makes its
    absence a failure."""
    path = os.environ.get("DRAGONFLY_CHROMIUM") or CHROMIUM
    if not Path(path).is_file():
        if os.environ.get("DRAGONFLY_REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"chromium is required here (DRAGONFLY_REQUIRE_BROWSER=1) but {path} is missing"
            )
        pytest.skip(f"chromium is not installed ({path} is missing; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()
