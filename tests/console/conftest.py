"""Fixtures of the console tests."""

from __future__ import annotations

from collections.abc import Iterator

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
