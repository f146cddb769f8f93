"""Fixtures of the attacker suite: rows live in the ``db`` fixture's rolled-back transaction."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.enforcement_seed import Seeded, seed


@pytest.fixture
def enf_case(db: psycopg.Connection[Any]) -> Seeded:
    """An open enforcement case on a fresh plaintiff and judgment."""
    return seed(db)
