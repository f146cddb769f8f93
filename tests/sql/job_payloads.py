"""Valid payloads of the shipped job kinds, for tests of the queue itself.

queue_job() checks a payload against its kind's shape at the door (referenced rows must
exist), so a test that needs "some job of kind K" seeds the rows it references first.
"""

from __future__ import annotations

from typing import Any

import psycopg

from tests.sql.enforcement_seed import seed


def valid_jobs(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """A payload per shipped kind, referencing rows seeded here (in the caller's transaction)."""
    seeded = seed(conn)
    assert seeded.court_case_id is not None
    assert seeded.case_id is not None
    return {
        "enrich": {"case_id": seeded.court_case_id},
        "enforce": {"case_id": seeded.case_id},
        "outreach": {"plaintiff_id": seeded.plaintiff_id, "reason": "new_judgment"},
        "case_copilot": {"case_id": seeded.case_id},
    }
