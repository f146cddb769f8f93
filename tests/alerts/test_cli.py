"""``dragonfly alerts`` and ``dragonfly listen --once`` through the real CLI (subprocesses)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from tests.alerts.conftest import Listeners
from tests.alerts.fakes import (
    FakeSlack,
    deliveries,
    log_event,
    make_case,
    make_tenant,
    set_rules,
    wait_until,
)
from tests.harness import run_cli, worker_url

Conn = psycopg.Connection[Any]


def test_dead_deliveries_are_listed_and_retried(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    env = {"DATABASE_URL": fresh_db_url}
    slack.script = [503, 503]
    event_id = log_event(conn, case_id)
    listener = listeners.make(slack=slack, max_attempts=2)

    wait_until(
        lambda: listener.run_once().dead == 1 or None, timeout=10, what="the delivery to die"
    )

    listed = run_cli("alerts", "list", "--status", "dead", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "dead" in listed.stdout
    assert "case CV-TEST-1  tenant default" in listed.stdout
    assert str(event_id) in listed.stdout
    assert "last error: slack: HTTP 503" in listed.stdout
    [row] = deliveries(fresh_db_url)

    stats = run_cli("alerts", "stats", env=env)
    assert "dead       1" in stats.stdout

    retried = run_cli("alerts", "retry", "--all-dead", env=env)
    assert retried.returncode == 0, retried.stderr
    assert f"delivery {row['id']}: queued for retry" in retried.stdout
    again = run_cli("alerts", "retry", str(row["id"]), env=env)
    assert again.returncode == 1
    assert "not dead or failed" in again.stdout

    assert listener.run_once().delivered == 1
    [row] = deliveries(fresh_db_url)
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    assert [p.status for p in slack.snapshot()] == [503, 503, 200]


def test_retry_needs_ids_or_all_dead(fresh_db_url: str) -> None:
    result = run_cli("alerts", "retry", env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 2
    assert "give delivery ids or --all-dead" in result.stderr


def test_rules_add_list_disable_remove(fresh_db_url: str) -> None:
    env = {"DATABASE_URL": fresh_db_url}
    added = run_cli(
        "alerts", "rules", "add", "big_levies",
        "--kinds", "bank_levy_served,bank_levy_filed", "--tiers", "tier0",
        "--min-amount", "5000", "--sinks", "slack,queue", "--job-kind", "enforce",
        env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = run_cli("alerts", "rules", "list", env=env)
    assert (
        "big_levies  [enabled ]  tenant=any kinds=bank_levy_served,bank_levy_filed tiers=tier0"
        " min_amount=5000.00  -> slack,queue job_kind=enforce"
    ) in listed.stdout
    assert "levy_served_replan" in listed.stdout  # a seeded default

    duplicate = run_cli("alerts", "rules", "add", "big_levies", "--sinks", "slack", env=env)
    assert duplicate.returncode == 1
    assert "exists; add --replace" in duplicate.stderr

    assert run_cli("alerts", "rules", "disable", "big_levies", env=env).returncode == 0
    assert "big_levies  [disabled]" in run_cli("alerts", "rules", "list", env=env).stdout
    assert run_cli("alerts", "rules", "remove", "big_levies", env=env).returncode == 0
    missing = run_cli("alerts", "rules", "remove", "big_levies", env=env)
    assert missing.returncode == 1
    assert "no rule named big_levies" in missing.stderr


def test_invalid_rules_are_refused_with_one_line(fresh_db_url: str) -> None:
    env = {"DATABASE_URL": fresh_db_url}
    bad_kind = run_cli(
        "alerts", "rules", "add", "x", "--sinks", "slack", "--kinds", "nope", env=env
    )
    assert bad_kind.returncode == 2
    assert "invalid rule" in bad_kind.stderr
    assert "nope" in bad_kind.stderr
    no_job = run_cli("alerts", "rules", "add", "x", "--sinks", "queue", env=env)
    assert no_job.returncode == 2
    assert "invalid rule" in no_job.stderr
    bad_sink = run_cli("alerts", "rules", "add", "x", "--sinks", "pager", env=env)
    assert bad_sink.returncode == 2
    assert "invalid rule: sinks" in bad_sink.stderr


def test_listen_once_catches_up_and_delivers(
    conn: Conn, case_id: UUID, slack: FakeSlack, fresh_db_url: str
) -> None:
    for _ in range(3):
        log_event(conn, case_id)
    # The listener logs in as a member of dragonfly_worker, as it is deployed.
    env = {"DATABASE_URL": worker_url(fresh_db_url), "DRAGONFLY_SLACK_WEBHOOK_URL": slack.url}

    result = run_cli("listen", "--once", env=env)

    assert result.returncode == 0, result.stderr
    assert "routed 3 event(s) into 3 delivery(ies); delivered 3" in result.stdout
    assert len(slack.ok_posts()) == 3


def test_rules_and_deliveries_by_tenant(conn: Conn, fresh_db_url: str) -> None:
    # As the fleet's login: the tenant is looked up through the fleet's own function.
    env = {"DATABASE_URL": worker_url(fresh_db_url)}
    beta = make_tenant(conn, "beta")
    slug = conn.execute("select slug from public.tenants where id = %s", (beta,)).fetchone()
    assert slug is not None
    added = run_cli(
        "alerts", "rules", "add", "beta_levies", "--kinds", "bank_levy_served",
        "--sinks", "slack", "--tenant", slug[0], env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    stored = conn.execute(
        "select tenant_id from dragonfly.alert_rules where name = 'beta_levies'"
    ).fetchone()
    assert stored == (beta,)
    listed = run_cli("alerts", "rules", "list", env=env).stdout
    assert f"beta_levies  [enabled ]  tenant={slug[0]} kinds=bank_levy_served" in listed
    # By id too; and --tenant lists that tenant's rules and those of every tenant.
    by_id = run_cli("alerts", "rules", "list", "--tenant", str(beta), env=env).stdout
    assert "beta_levies" in by_id
    assert "levy_served_replan" in by_id  # a default: every tenant's
    default_only = run_cli("alerts", "rules", "list", "--tenant", "default", env=env).stdout
    assert "beta_levies" not in default_only
    assert "levy_served_replan" in default_only

    unknown = run_cli(
        "alerts", "rules", "add", "x", "--sinks", "slack", "--tenant", "no-such", env=env
    )
    assert unknown.returncode == 2
    assert "--tenant: no tenant 'no-such' (give its slug or id)" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1

    # Deliveries by tenant.
    set_rules(conn, {"name": "all", "sinks": ["slack"]})
    log_event(conn, make_case(conn, tenant=beta))
    log_event(conn, make_case(conn))
    assert run_cli("listen", "--once", env=env).returncode == 0
    of_beta = run_cli("alerts", "list", "--tenant", slug[0], env=env).stdout
    assert of_beta.count(f"tenant {slug[0]}") == 1
    assert "tenant default" not in of_beta
    assert run_cli("alerts", "list", "--tenant", "nope", env=env).returncode == 2
