"""The queue findings replayed with the real workers running (enrich, enforce, outreach with a
loopback SMTP server): what the internet sends either never enters a queue, or is one of the
few things a public caller may ask for, and the fleet's own and the console's jobs still run.

Each call is one transaction as anon, a signed-in user of no tenant or a signed-in viewer of
the rows' tenant (all public callers), as a PostgREST request is. Anon and the non-member reach
no tenant: whatever they send about a row is refused, at the latest as a row that does not
exist."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.kinds.enforce_copilot_support import actions, completed, worker_process
from tests.kinds.enrich_outreach_support import (
    make_case,
    make_plaintiff,
    open_enforcement_case,
    quiet_zone,
    smtp_server,
    wait_for,
)
from tests.security.support import PUBLIC_ROLES, VIEWER, become
from tests.sql.enforcement_seed import DIGESTED_TABLES, digest

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]

# Everything a job of these kinds could change, and the queue's own records.
WATCHED = (
    *DIGESTED_TABLES,
    "judgments.cases",
    "enrichment.assets",
    "enrichment.contacts",
    "enrichment.case_signals",
    "public.outreach_attempts",
    "public.outreach_emails",
    "public.case_copilot_outputs",
    "dragonfly.enqueued_jobs",
    "dragonfly.dead_letters",
    "dragonfly.completed_jobs",
)
CAMPAIGN = "2026-q1-reactivation"


def call_as(url: str, role: str, job: dict[str, Any]) -> int | psycopg.Error:
    """``POST /rpc/queue_job`` as ``role``: the message id, or the error it answered."""
    with psycopg.connect(url) as conn:
        try:
            become(conn, role)
            row = conn.execute("select public.queue_job(%s)", (Jsonb(job),)).fetchone()
            conn.commit()
        except psycopg.Error as error:
            return error
    assert row is not None
    return int(row[0])


@pytest.fixture
def fleet(fresh_db_url: str) -> Iterator[Any]:
    """The enrich, enforce and outreach workers on ``fresh_db_url``; yields the SMTP handler."""
    with ExitStack() as stack:
        smtp = stack.enter_context(smtp_server())
        outreach_env = {
            "DRAGONFLY_SMTP_HOST": "127.0.0.1",
            "DRAGONFLY_SMTP_PORT": str(smtp.port),
            "DRAGONFLY_OUTREACH_FROM_EMAIL": "outreach@dragonfly.test",
        }
        stack.enter_context(worker_process("enrich", fresh_db_url))
        stack.enter_context(worker_process("enforce", fresh_db_url))
        stack.enter_context(worker_process("outreach", fresh_db_url, outreach_env))
        yield smtp


def test_the_findings_against_a_running_fleet(fresh_db_url: str, fleet: Any) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        plaintiff = make_plaintiff(conn, timezone=quiet_zone(quiet=False))
        ids = make_case(conn, plaintiff_id=plaintiff)
        case_id = str(open_enforcement_case(conn, ids))
        court_case = str(ids["case_id"])
        conn.execute(
            "insert into public.outreach_campaigns (name, description) values (%s, 'Winter')",
            (CAMPAIGN,),
        )
        sweep_key = f"enforce:sla:{case_id}:2026-12-03T00:00:00Z"
        attacks: list[tuple[dict[str, Any], str]] = [
            (  # 1: a planted bank asset, then a levy
                {
                    "kind": "enrich",
                    "payload": {
                        "case_id": court_case,
                        "bundle": {"assets": [{"asset_type": "bank", "institution": "Planted"}]},
                    },
                },
                "42501",
            ),
            (
                {"kind": "enforce", "payload": {"case_id": case_id, "requested_action": "marshal"}},
                "42501",
            ),
            (  # 2: a call task, a header
                {
                    "kind": "outreach",
                    "payload": {"plaintiff_id": str(plaintiff), "channel": "call"},
                },
                "42501",
            ),
            (
                {
                    "kind": "outreach",
                    "payload": {"plaintiff_id": str(plaintiff), "campaign": "x\r\nBcc: all@x.test"},
                },
                "22023",
            ),
            (  # 6: size, depth, delay
                {"kind": "enforce", "payload": {"case_id": case_id, "pad": "x" * 100_000}},
                "54000",
            ),
            (
                {"kind": "enforce", "delay_seconds": 86400, "payload": {"case_id": case_id}},
                "22023",
            ),
            ({"kind": "enrich", "payload": {}}, "22023"),  # 3: malformed, at the door
            ({"kind": "nosuchkind" * 100_000, "payload": {}}, "22023"),  # 9: not echoed
        ]
        before = digest(conn, WATCHED)
        for role in (*PUBLIC_ROLES, VIEWER):
            for n, (job, sqlstate) in enumerate(attacks):
                answer = call_as(fresh_db_url, role, {"idempotency_key": f"a{n}", **job})
                assert isinstance(answer, psycopg.Error), job
                # For a caller who reaches no tenant, a row checked before the offending
                # field is a row that does not exist.
                allowed = {sqlstate} if role == VIEWER else {sqlstate, "23503"}
                assert answer.sqlstate in allowed, str(answer)
                assert len(str(answer)) < 600
        assert digest(conn, WATCHED) == before

        # 5: the sweep's key, squatted first, is still the sweep's.
        squat = {"kind": "enforce", "idempotency_key": sweep_key, "payload": {"case_id": case_id}}
        squatted = call_as(fresh_db_url, VIEWER, squat)
        assert isinstance(squatted, int)
        sweep = {**squat, "payload": {"case_id": case_id, "trigger": "sla_sweep"}}
        real = conn.execute("select public.queue_job(%s)", (Jsonb(sweep),)).fetchone()
        assert real is not None
        assert real[0] != squatted
        wait_for(lambda: completed(conn, "enforce", sweep_key), what="the sweep's own job")

        # 2: twenty keys for one plaintiff from the internet are two outreach jobs.
        outreach = {"plaintiff_id": str(plaintiff), "campaign": CAMPAIGN}
        answers = [
            call_as(
                fresh_db_url,
                VIEWER,
                {"kind": "outreach", "idempotency_key": f"o{n}", "payload": outreach},
            )
            for n in range(20)
        ]
        accepted = [a for a in answers if isinstance(a, int)]
        assert len(accepted) == 2
        assert {a.sqlstate for a in answers if isinstance(a, psycopg.Error)} == {"PT429"}
        wait_for(lambda: len(fleet.messages) == 2, what="the two emails")

        # The legitimate paths: a public re-score (by a viewer of the case's tenant: anon's is
        # refused as for a case that does not exist), and the console's requested step.
        job = {"kind": "enrich", "idempotency_key": "rescore", "payload": {"case_id": court_case}}
        for role in PUBLIC_ROLES:
            refused = call_as(fresh_db_url, role, job)
            assert isinstance(refused, psycopg.Error)
            assert refused.sqlstate == "23503"
        rescore = call_as(fresh_db_url, VIEWER, job)
        assert isinstance(rescore, int)
        with psycopg.connect(fresh_db_url) as console:
            become(console, "enforcement_operator")
            console.execute(
                "select public.queue_job(%s)",
                (
                    Jsonb(
                        {
                            "kind": "enforce",
                            "idempotency_key": f"console:{uuid.uuid4()}",
                            "payload": {"case_id": case_id, "requested_action": "bank_levy"},
                        }
                    ),
                ),
            )
            console.commit()
        wait_for(
            lambda: ("bank_levy", "queued") in actions(conn, uuid.UUID(case_id)),
            what="the operator's levy",
        )
        wait_for(
            lambda: (
                conn.execute(
                    "select count(*) from dragonfly.completed_jobs where kind = 'enrich'"
                ).fetchone()
                == (1,)
            ),
            what="the public re-score",
        )
        assert ("marshal", "queued") not in actions(conn, uuid.UUID(case_id))
        assert len(fleet.messages) == 2
        dead = conn.execute("select count(*) from dragonfly.dead_letters").fetchone()
        assert dead == (0,)
