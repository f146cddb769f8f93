"""Fixtures of the runtime tests: a migrated database with the test handler's tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.runtime.handlers import SCHEMA_SQL
from tests.runtime.support import WorkerProcess


@pytest.fixture
def runtime_db(fresh_db_url: str) -> str:
    """A migrated database of the test's own, with runtime_test.effects and .switch."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    return fresh_db_url


@pytest.fixture
def conn(runtime_db: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to ``runtime_db`` for enqueueing and checking."""
    with psycopg.connect(runtime_db, autocommit=True) as c:
        yield c


@pytest.fixture
def start_worker(runtime_db: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes on ``runtime_db``; any still running are killed afterwards."""
    started: list[WorkerProcess] = []

    def start(**kwargs: Any) -> WorkerProcess:
        kwargs.setdefault("name", f"worker{len(started) + 1}")
        worker = WorkerProcess(kwargs.pop("url", runtime_db), tmp_path, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()
