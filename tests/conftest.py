"""Shared fixtures: a real PostgreSQL with PGMQ, migrated once per session.

Fixtures:
- ``db``: a connection to the session database inside a transaction that is
  rolled back after the test (for SQL/RPC/RLS tests; never commit in it).
- ``fresh_db_url``: the URL of a migrated database of the test's own (a clone of
  the template), for tests that commit, LISTEN or start processes.
- ``empty_db_url``: an empty database of the test's own (migration tests).
- ``admin_url``: the server's admin URL; ``backend`` the harness itself.
- ``promtool``: the path of Prometheus's promtool (``DRAGONFLY_PROMTOOL`` or on PATH),
  for the alerting-rule tests; they skip without it, unless
  ``DRAGONFLY_REQUIRE_PROMTOOL=1`` (CI), which makes its absence a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import settings

from tests.harness import Backend

# Property tests explore new inputs on every local run; CI replays a fixed sequence
# (HYPOTHESIS_PROFILE=ci) so a red build always comes from the change under test.
# A failure found locally prints its seed and shrunk example to add as a regression.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def backend() -> Iterator[Backend]:
    harness = Backend()
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def admin_url(backend: Backend) -> str:
    return backend.admin_url


@pytest.fixture(scope="session")
def template_db(backend: Backend) -> Iterator[str]:
    name = backend.create_migrated()
    yield name
    backend.drop(name)


@pytest.fixture(scope="session")
def session_db_url(backend: Backend, template_db: str) -> Iterator[str]:
    name = backend.clone(template_db, "s")
    yield backend.url(name)
    backend.drop(name)


@pytest.fixture
def db(session_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(session_db_url, autocommit=False)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def fresh_db_url(backend: Backend, template_db: str) -> Iterator[str]:
    name = backend.clone(template_db)
    yield backend.url(name)
    backend.drop(name)


@pytest.fixture
def empty_db_url(backend: Backend) -> Iterator[str]:
    name = backend.create_empty()
    yield backend.url(name)
    backend.drop(name)


@pytest.fixture(scope="session")
def promtool() -> str:
    path = os.environ.get("DRAGONFLY_PROMTOOL") or shutil.which("promtool")
    if path:
        return path
    if os.environ.get("DRAGONFLY_REQUIRE_PROMTOOL") == "1":
        pytest.fail("promtool is required here (DRAGONFLY_REQUIRE_PROMTOOL=1) but not found")
    pytest.skip("promtool is not installed (set DRAGONFLY_PROMTOOL or put it on PATH)")
