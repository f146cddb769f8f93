"""Fixtures of the enforcement tests (prefixed ``enf_``; other suites share this directory).

Each builds on the ``db`` fixture: rows live in the test's rolled-back transaction.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.enforcement_seed import Seeded, seed


@pytest.fixture
def enf_case(db: psycopg.Connection[Any]) -> Seeded:
    """An open enforcement case (tier0, balance 1000.00) on a fresh plaintiff and judgment."""
    return seed(db)


@pytest.fixture
def enf_judgment(db: psycopg.Connection[Any]) -> Seeded:
    """A plaintiff, an active judgment (1000.00) and its court case, with no enforcement case."""
    return seed(db, open_case=False)
