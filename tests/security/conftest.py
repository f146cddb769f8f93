"""Fixtures of the attacker suite: rows live in the ``db`` fixture's rolled-back transaction."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.security.support import TENANT_A, make_tenants
from tests.sql.enforcement_seed import Seeded, seed


@pytest.fixture
def enf_case(db: psycopg.Connection[Any]) -> Seeded:
    """An open enforcement case on a fresh plaintiff and judgment."""
    return seed(db)


@pytest.fixture
def tenants(db: psycopg.Connection[Any]) -> None:
    """Tenants A and B with their members (support.MEMBERS): viewer_a, operator_a, admin_a,
    operator_b."""
    make_tenants(db)


@pytest.fixture
def case_a(db: psycopg.Connection[Any], tenants: None) -> Seeded:
    """An open enforcement case of tenant A (plaintiff, judgment and court case too)."""
    return seed(db, tenant=TENANT_A)
