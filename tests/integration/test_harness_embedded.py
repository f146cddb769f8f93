"""The test harness stops the embedded server it started when the session ends, and leaves
one that was already running alone."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Backend, embedded_running
from workers.db.embedded import embedded_url, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home of its own for an embedded server; the harness is pointed at it, not at the
    server of the environment."""
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRAGONFLY_TEST_BACKEND", raising=False)
    base = Path(tempfile.mkdtemp(prefix="dragonfly-harness-", dir="/tmp"))
    base.chmod(0o755)  # as root, postgres runs as the pgserver user
    try:
        yield base / "home"
    finally:
        stop(base / "home")
        shutil.rmtree(base, ignore_errors=True)


def test_a_session_stops_the_embedded_server_it_started(home: Path) -> None:
    backend = Backend(embedded_home=home)
    assert embedded_running(home)

    backend.close()

    assert not embedded_running(home)


def test_a_server_that_was_already_running_is_left_running(home: Path) -> None:
    embedded_url(home)

    Backend(embedded_home=home).close()

    assert embedded_running(home)
