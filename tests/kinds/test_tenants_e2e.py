"""The real workers act inside each job's tenant (docs/worker-runtime.md, "Tenants").

Two tenants, A and B, with cases of their own. A forged envelope (tenant B, a row of A) is
dead-lettered as not found with no effect, by every kind; a batch mixing A's and B's jobs acts
on each case in its own tenant; the SLA sweep and request_case_copilot name each job's tenant.
Real `dragonfly worker` processes, logged in as the fleet's role, a loopback SMTP server.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.kinds.enforce_copilot_support import (
    actions,
    add_asset,
    case_row,
    completed,
    dead_letter,
    enqueue,
    worker_process,
)
from tests.kinds.enrich_outreach_support import (
    RICH_BUNDLE,
    make_case,
    make_plaintiff,
    open_enforcement_case,
    quiet_zone,
    smtp_server,
    wait_for,
)
from tests.runtime.support import INTERNAL, WorkerProcess
from workers.enforce.sweep import SlaSweepTask, sla_key
from workers.scheduler.base import TaskContext

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def tenants(conn: Conn) -> tuple[uuid.UUID, uuid.UUID]:
    a, b = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        "insert into public.tenants (id, slug, name)"
        " values (%s, 'acme', 'Acme'), (%s, 'beta', 'Beta')",
        (a, b),
    )
    return a, b


def tenant_case(conn: Conn, tenant: uuid.UUID, *, email: str | None = None) -> dict[str, uuid.UUID]:
    """A plaintiff, court case and open enforcement case in ``tenant``, a bank asset known."""
    plaintiff = make_plaintiff(
        conn,
        tenant=tenant,
        email=email or f"{uuid.uuid4().hex[:8]}@example.test",
        timezone=quiet_zone(quiet=False),
    )
    ids = make_case(conn, plaintiff_id=plaintiff)
    ids["ec"] = open_enforcement_case(conn, ids)
    add_asset(conn, ids["case_id"], "bank", "Chase")
    conn.execute("update public.enforcement_cases set tier = 'tier1' where id = %s", (ids["ec"],))
    return ids


def forge(conn: Conn, kind: str, key: str, payload: dict[str, Any], tenant: uuid.UUID) -> int:
    """pgmq.send() an envelope naming ``tenant`` whatever its rows' tenant is (a forged or
    misrouted message; the fleet's provenance, so only the tenant is wrong)."""
    envelope = {
        "kind": kind,
        "idempotency_key": key,
        "payload": payload,
        "requested_by": None,
        "provenance": INTERNAL,
        "tenant": str(tenant),
    }
    row = conn.execute("select pgmq.send(%s, %s)", (kind, Jsonb(envelope))).fetchone()
    assert row is not None
    return int(row[0])


def envelope_of(conn: Conn, kind: str, msg_id: int) -> dict[str, Any]:
    row = conn.execute(f"select message from pgmq.q_{kind} where msg_id = %s", (msg_id,)).fetchone()
    assert row is not None
    return dict(row[0])


def case_state(conn: Conn, case_id: uuid.UUID) -> tuple[Any, ...]:
    """Everything a job of any kind could change about an enforcement case."""
    row = conn.execute(
        "select row(c.*)::text,"
        " (select count(*) from public.enforcement_events e where e.enforcement_case_id = c.id),"
        " (select count(*) from public.enforcement_actions a where a.enforcement_case_id = c.id),"
        " (select count(*) from public.enforcement_history h where h.enforcement_case_id = c.id),"
        " (select count(*) from public.case_copilot_outputs o where o.enforcement_case_id = c.id)"
        " from public.enforcement_cases c where c.id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def batches(log: list[str]) -> list[dict[str, Any]]:
    found = []
    for line in "".join(log).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "batch_committed":
            found.append(record)
    return found


def test_enforce_acts_in_each_jobs_tenant_and_a_forged_job_has_no_effect(
    fresh_db_url: str, conn: Conn, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = tenants
    case_a, case_b, target = tenant_case(conn, a), tenant_case(conn, b), tenant_case(conn, a)
    untouched = case_state(conn, target["ec"])
    # All three wait in the queue before the worker starts: one read, one batch.
    in_a = enqueue(conn, "enforce", "plan-a", {"case_id": str(case_a["ec"]), "trigger": "manual"})
    in_b = enqueue(conn, "enforce", "plan-b", {"case_id": str(case_b["ec"]), "trigger": "manual"})
    assert envelope_of(conn, "enforce", in_a)["tenant"] == str(a)
    assert envelope_of(conn, "enforce", in_b)["tenant"] == str(b)
    forged = forge(
        conn, "enforce", "forged", {"case_id": str(target["ec"]), "trigger": "manual"}, b
    )
    log: list[str] = []
    with worker_process("enforce", fresh_db_url, stderr=log):
        reason, error = wait_for(
            lambda: dead_letter(conn, "enforce", forged), what="the forged job's dead letter"
        )
        wait_for(lambda: completed(conn, "enforce", "plan-a"), what="A's plan")
        wait_for(lambda: completed(conn, "enforce", "plan-b"), what="B's plan")
    assert reason == "permanent"
    assert f"enforce_plan_input: enforcement case {target['ec']} not found" in error
    assert case_state(conn, target["ec"]) == untouched
    assert actions(conn, case_a["ec"]) == [("bank_levy", "queued")]
    assert actions(conn, case_b["ec"]) == [("bank_levy", "queued")]
    # However the reads fell (one batch, or one per tenant group), two jobs were done and one
    # failed, each once.
    logged = [r for r in batches(log) if r["done"] or r["failed"]]
    assert (sum(r["done"] for r in logged), sum(r["failed"] for r in logged)) == (2, 1)


@pytest.fixture
def start_enrich(fresh_db_url: str, tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(
            fresh_db_url, tmp_path, kind="enrich", handler="workers.enrich:JOB", name="enrich"
        )
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.terminate()
        try:
            worker.wait(30)
        finally:
            worker.close()


def enrichment_of(conn: Conn, court_case: uuid.UUID) -> tuple[Any, ...]:
    row = conn.execute(
        "select c.collectability_score, c.last_scored_at,"
        " (select count(*) from enrichment.contacts k where k.case_id = c.id),"
        " (select count(*) from enrichment.assets x where x.case_id = c.id),"
        " (select count(*) from enrichment.case_signals s where s.case_id = c.id)"
        " from judgments.cases c where c.id = %s",
        (court_case,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_an_enrich_batch_of_two_tenants_scores_each_in_its_own(
    conn: Conn, tenants: tuple[uuid.UUID, uuid.UUID], start_enrich: Any
) -> None:
    a, b = tenants
    genuine = {
        "a1": tenant_case(conn, a)["case_id"],
        "a2": tenant_case(conn, a)["case_id"],
        "b1": tenant_case(conn, b)["case_id"],
    }
    target = tenant_case(conn, a)["case_id"]
    before = enrichment_of(conn, target)
    for key, court_case in genuine.items():
        enqueue(conn, "enrich", key, {"case_id": str(court_case), "bundle": RICH_BUNDLE})
    forged = forge(conn, "enrich", "forged", {"case_id": str(target), "bundle": RICH_BUNDLE}, b)
    worker = start_enrich()  # everything is waiting: one read, one batch

    reason, error = wait_for(lambda: dead_letter(conn, "enrich", forged), what="the dead letter")
    wait_for(
        lambda: all(completed(conn, "enrich", key) for key in genuine), what="the genuine jobs"
    )
    assert reason == "permanent"
    assert f"prepare_scoring: case {target} not found in judgments.cases" in error
    assert enrichment_of(conn, target) == before  # no bundle stored, no score
    for court_case in genuine.values():
        score, scored_at, contacts, assets, _signals = enrichment_of(conn, court_case)
        assert (score is not None, scored_at is not None, contacts, assets) == (True, True, 3, 3)
    # A's two jobs and B's one went through the batch path, each tenant in a call of its own
    # (B's call left the forged job to the single path, which refused it).
    enriched = worker.events("case_enriched", batch=True)
    assert sorted(e["idempotency_key"] for e in enriched) == ["a1", "a2", "b1"]
    assert not worker.events("batch_handler_failed")


def test_outreach_never_contacts_a_plaintiff_of_another_tenant(
    fresh_db_url: str, conn: Conn, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = tenants
    theirs = tenant_case(conn, a, email="a-plaintiff@example.test")["plaintiff_id"]
    mine = tenant_case(conn, b, email="b-plaintiff@example.test")["plaintiff_id"]
    with smtp_server() as smtp:
        env = {
            "DRAGONFLY_SMTP_HOST": "127.0.0.1",
            "DRAGONFLY_SMTP_PORT": str(smtp.port),
            "DRAGONFLY_OUTREACH_FROM_EMAIL": "outreach@dragonfly.test",
        }
        forged = forge(
            conn,
            "outreach",
            "forged",
            {"plaintiff_id": str(theirs), "channel": "email", "reason": "new_judgment"},
            b,
        )
        enqueue(
            conn,
            "outreach",
            "genuine",
            {"plaintiff_id": str(mine), "channel": "email", "reason": "new_judgment"},
        )
        with worker_process("outreach", fresh_db_url, env):
            reason, error = wait_for(
                lambda: dead_letter(conn, "outreach", forged), what="the dead letter"
            )
            wait_for(lambda: completed(conn, "outreach", "genuine"), what="B's outreach")
        assert [m["To"] for m in smtp.messages] == ["Acme Holdings LLC <b-plaintiff@example.test>"]
    assert reason == "permanent"
    assert f"begin_outreach: plaintiff {theirs} not found" in error
    rows = conn.execute(
        "select (select count(*) from public.outreach_attempts where plaintiff_id = %s),"
        " (select count(*) from public.outreach_emails where plaintiff_id = %s),"
        " (select status::text from public.plaintiffs where id = %s)",
        (theirs, theirs, theirs),
    ).fetchone()
    assert rows == (0, 0, "new")


def test_copilot_briefs_come_from_the_cases_tenant_only(
    fresh_db_url: str, conn: Conn, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = tenants
    case_a, target = tenant_case(conn, a), tenant_case(conn, a)
    operator = uuid.uuid4()
    conn.execute(
        "insert into auth.users (id, email) values (%s, 'ops-a@example.test')", (operator,)
    )
    conn.execute(
        "insert into public.tenant_members (tenant_id, user_id, role) values (%s, %s, 'operator')",
        (a, operator),
    )
    # The console's button, as a signed-in operator of A (one transaction, as over PostgREST).
    with psycopg.connect(fresh_db_url) as console:
        console.execute("set local role authenticated")
        console.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": str(operator)}),),
        )
        row = console.execute(
            "select public.request_case_copilot(%s)", (str(case_a["ec"]),)
        ).fetchone()
        console.commit()
    assert row is not None
    requested = envelope_of(conn, "case_copilot", int(row[0]))
    assert requested["tenant"] == str(a)
    untouched = case_state(conn, target["ec"])
    forged = forge(conn, "case_copilot", "forged", {"case_id": str(target["ec"])}, b)
    with worker_process("case_copilot", fresh_db_url):
        reason, error = wait_for(
            lambda: dead_letter(conn, "case_copilot", forged), what="the dead letter"
        )
        wait_for(
            lambda: completed(conn, "case_copilot", requested["idempotency_key"]),
            what="A's brief",
        )
    assert reason == "permanent"
    assert f"case_copilot_context: enforcement case {target['ec']} not found" in error
    assert case_state(conn, target["ec"]) == untouched
    briefs = conn.execute(
        "select count(*) from public.case_copilot_outputs where enforcement_case_id = %s",
        (case_a["ec"],),
    ).fetchone()
    assert briefs == (1,)


def test_the_sla_sweep_names_each_jobs_tenant(
    fresh_db_url: str, conn: Conn, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = tenants
    due = datetime.now(UTC) - timedelta(hours=1)
    cases = {tenant: tenant_case(conn, tenant)["ec"] for tenant in (a, b)}
    for case_id in cases.values():
        conn.execute(
            "update public.enforcement_cases set next_action_at = %s where id = %s", (due, case_id)
        )
    result = SlaSweepTask.every_minutes(15, batch=100).run_once(
        TaskContext(conn, datetime.now(UTC), threading.Event())
    )
    assert result.detail == {"due": 2, "enqueued": 2, "batch_full": False}
    envelopes = {
        m["payload"]["case_id"]: m
        for (m,) in conn.execute("select message from pgmq.q_enforce").fetchall()
    }
    for tenant, case_id in cases.items():
        envelope = envelopes[str(case_id)]
        assert envelope["tenant"] == str(tenant)
        assert envelope["idempotency_key"] == sla_key(case_id, due)
    with worker_process("enforce", fresh_db_url):
        for case_id in cases.values():
            wait_for(
                lambda case_id=case_id: completed(conn, "enforce", sla_key(case_id, due)),
                what="the sweep's plan job",
            )
    for case_id in cases.values():
        assert actions(conn, case_id) == [("bank_levy", "queued")]
        assert case_row(conn, case_id)["next_action_at"] > datetime.now(UTC)
