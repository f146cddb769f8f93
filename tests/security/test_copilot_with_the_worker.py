"""The one-pending-brief rule with a real ``dragonfly worker case_copilot`` running: a burst
of public requests (a viewer of the case's tenant) costs one brief; once the worker has
stored it, the console may ask again; the stored brief names the session, not the name the
caller gave."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.kinds.enforce_copilot_support import add_asset, queue_empty, worker_process
from tests.kinds.enrich_outreach_support import make_case, open_enforcement_case, wait_for
from tests.security.support import TENANT_A, make_tenants, request_brief
from tests.sql.enforcement_seed import seed_plaintiff

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]


def briefs(conn: Conn, case_id: str) -> list[str]:
    rows = conn.execute(
        "select requested_by from public.case_copilot_outputs where enforcement_case_id = %s"
        " order by created_at",
        (case_id,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_a_burst_of_viewer_requests_costs_one_brief(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        make_tenants(conn)
        ids = make_case(conn, plaintiff_id=uuid.UUID(seed_plaintiff(conn, tenant=TENANT_A)))
        case_id = str(open_enforcement_case(conn, ids))
        add_asset(conn, ids["case_id"], "bank", "Chase")
        # The burst lands before the worker starts, as a burst faster than one brief would.
        burst = {
            request_brief(fresh_db_url, "viewer_a", case_id, "dragonfly:scheduler")
            for _ in range(50)
        }
        assert len(burst) == 1
        with worker_process("case_copilot", fresh_db_url):
            wait_for(lambda: len(briefs(conn, case_id)) == 1, what="the brief")
            wait_for(lambda: queue_empty(conn, "case_copilot"), what="the queue")
            # The brief is stored and its job gone: asking again is a new request.
            again = request_brief(fresh_db_url, "viewer_a", case_id)
            assert again not in burst
            wait_for(lambda: len(briefs(conn, case_id)) == 2, what="the second brief")
        assert briefs(conn, case_id) == [
            "viewer.a@example.test (on behalf of dragonfly:scheduler)",
            "viewer.a@example.test",
        ]
