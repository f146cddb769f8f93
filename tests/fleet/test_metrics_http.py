"""The health/metrics server in-process: real HTTP, real PostgreSQL, prometheus-client."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet.helpers import wait_for
from tests.harness import url_with_db, worker_url
from workers.observability import process as observability
from workers.observability.http import HealthServer, Readiness, make_app
from workers.observability.metrics import (
    PrometheusJobMetrics,
    QueueStatsCollector,
    new_registry,
)
from workers.observability.probe import DatabaseProbe
from workers.settings import Settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class Served:
    def __init__(self, url: str) -> None:
        self.registry = new_registry()
        self.jobs = PrometheusJobMetrics(self.registry)
        self.probe = DatabaseProbe(url, connect_timeout=2, cache_seconds=0)
        self.registry.register(QueueStatsCollector(self.probe.queue_stats))
        self.readiness = Readiness()
        app = make_app(self.registry, self.readiness, self.probe.ping)
        self.server = HealthServer(app, "127.0.0.1", 0).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=10)

    def close(self) -> None:
        self.http.close()
        self.server.close()
        self.probe.close()


@pytest.fixture
def served(fresh_db_url: str) -> Iterator[Served]:
    s = Served(fresh_db_url)
    try:
        yield s
    finally:
        s.close()


def test_metrics_serve_job_counters_histogram_and_queue_gauges(
    served: Served, fresh_db_url: str
) -> None:
    served.jobs.job_done(queue="enrich", kind="enrich", duration_s=0.02)
    served.jobs.job_done(queue="enrich", kind="enrich", duration_s=0.3)
    served.jobs.job_failed(queue="enrich", kind="enrich", duration_s=1.5, retrying=True)
    served.jobs.job_dead_lettered(queue="outreach", kind="outreach", reason="max_attempts")
    served.jobs.job_dead_lettered(queue="enrich", kind=None, reason="malformed")
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        for n in range(3):
            conn.execute("select pgmq.send('enrich', %s::jsonb)", (f'{{"n": {n}}}',))
        conn.execute("select * from pgmq.read('enrich', 300, 1)")
        conn.execute(
            "update pgmq.q_enrich set enqueued_at = now() - interval '90 seconds'"
            " where msg_id = (select min(msg_id) from pgmq.q_enrich)"
        )
        conn.execute(
            "insert into dragonfly.dead_letters (queue, msg_id, message, attempts, reason,"
            " last_error) values ('enrich', 99, '{}', 1, 'malformed', 'no kind')"
        )

    response = served.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    enrich = (("kind", "enrich"), ("queue", "enrich"))
    assert got[("dragonfly_jobs_done_total", enrich)] == 2
    assert got[("dragonfly_jobs_failed_total", (*enrich, ("retrying", "true")))] == 1
    assert (
        got[
            (
                "dragonfly_jobs_dead_lettered_total",
                (("kind", "outreach"), ("queue", "outreach"), ("reason", "max_attempts")),
            )
        ]
        == 1
    )
    done = (("kind", "enrich"), ("outcome", "done"), ("queue", "enrich"))
    assert got[("dragonfly_job_duration_seconds_count", done)] == 2
    assert got[("dragonfly_job_duration_seconds_sum", done)] == pytest.approx(0.32)
    bucket = tuple(sorted((*done, ("le", "0.025"))))
    assert got[("dragonfly_job_duration_seconds_bucket", bucket)] == 1

    assert got[("dragonfly_queue_stats_up", ())] == 1
    q = (("queue", "enrich"),)
    assert got[("dragonfly_queue_depth", q)] == 3
    assert got[("dragonfly_queue_in_flight", q)] == 1
    assert got[("dragonfly_queue_visible", q)] == 2
    assert got[("dragonfly_queue_oldest_message_age_seconds", q)] >= 90
    assert got[("dragonfly_queue_dead_letters", q)] == 1
    assert got[("dragonfly_queue_messages_sent_total", q)] == 3
    assert got[("dragonfly_queue_depth", (("queue", "outreach"),))] == 0
    # The standard process collector is there too (resident memory for the benchmarks).
    assert got[("process_resident_memory_bytes", ())] > 0


RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def test_open_dead_letters_show_in_the_gauge_and_page_past_the_threshold(
    served: Served, fresh_db_url: str, promtool: str, tmp_path: Path
) -> None:
    # 1001 open dead letters in two queues, and resolved ones, which do not count.
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "insert into dragonfly.dead_letters (queue, msg_id, message, attempts, reason,"
            " last_error, status, resolved_at, resolved_by)"
            " select case when g <= 600 then 'enrich' else 'outreach' end, g, '{}', 1,"
            " 'permanent', 'boom', case when g > 1001 then 'purged' else 'dead' end,"
            " case when g > 1001 then now() end, case when g > 1001 then 'test' end"
            " from generate_series(1, 1100) as g"
        )
    got = samples(served.http.get("/metrics").text)
    open_by_queue = {
        dict(labels)["queue"]: value
        for (name, labels), value in got.items()
        if name == "dragonfly_queue_dead_letters"
    }
    assert open_by_queue["enrich"] == 600
    assert open_by_queue["outreach"] == 401
    assert sum(open_by_queue.values()) == 1001

    # What Prometheus would hold after 20 minutes of these scrapes fires the page.
    series = "\n".join(
        f"      - series: 'dragonfly_queue_dead_letters{{queue=\"{queue}\"}}'\n"
        f"        values: '{int(value)}x25'"
        for queue, value in sorted(open_by_queue.items())
    )
    (tmp_path / "scraped.test.yml").write_text(
        f"rule_files:\n  - {RULES}\n"
        "evaluation_interval: 1m\n"
        "tests:\n"
        "  - interval: 1m\n"
        f"    input_series:\n{series}\n"
        "    alert_rule_test:\n"
        "      - eval_time: 20m\n"
        "        alertname: DragonflyDeadLettersPiling\n"
        "        exp_alerts:\n"
        "          - exp_labels: {severity: critical}\n"
        "            exp_annotations:\n"
        "              summary: '1001 open dead letters in all queues (threshold 1000)'\n"
        "              runbook: docs/runbooks/dead-letters.md#too-many-open-dead-letters\n"
    )
    checked = subprocess.run(
        [promtool, "test", "rules", "scraped.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_healthz_is_liveness_with_the_pid(served: Served) -> None:
    response = served.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "pid": os.getpid()}
    assert served.http.get("/nope").status_code == 404
    assert served.http.post("/healthz").status_code == 405


def test_readyz_follows_the_process_flag_and_database_reachability(
    served: Served, fresh_db_url: str, admin_url: str
) -> None:
    response = served.http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"process": "starting", "database": "ok"}

    served.readiness.set_ready(True)
    response = served.http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"process": "ok", "database": "ok"}}

    dbname = psycopg.conninfo.conninfo_to_dict(fresh_db_url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'alter database "{dbname}" allow_connections false')
        admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (dbname,)
        )
        try:

            def unready() -> dict[str, Any] | None:
                r = served.http.get("/readyz")
                return r.json() if r.status_code == 503 else None

            body = wait_for(unready, timeout=15, what="/readyz to report the database down")
            assert body["checks"]["process"] == "ok"
            assert body["checks"]["database"] != "ok"
            scraped = samples(served.http.get("/metrics").text)
            assert scraped[("dragonfly_queue_stats_up", ())] == 0
            assert ("dragonfly_queue_depth", (("queue", "enrich"),)) not in scraped
        finally:
            admin.execute(f'alter database "{dbname}" allow_connections true')

    wait_for(
        lambda: served.http.get("/readyz").status_code == 200,
        timeout=15,
        what="/readyz to recover with the database",
    )

    served.readiness.set_ready(False, "stopping")
    assert served.http.get("/readyz").json()["checks"]["process"] == "stopping"


def test_readyz_reports_an_unreachable_server(fresh_db_url: str) -> None:
    dead = url_with_db("postgresql://postgres@127.0.0.1:1/x", "x")
    probe = DatabaseProbe(dead, connect_timeout=1, cache_seconds=0)
    readiness = Readiness()
    readiness.set_ready(True)
    server = HealthServer(make_app(new_registry(), readiness, probe.ping), "127.0.0.1", 0).start()
    try:
        response = httpx.get(server.url + "/readyz", timeout=10)
        assert response.status_code == 503
        assert "127.0.0.1" in response.json()["checks"]["database"]
    finally:
        server.close()


def test_a_process_beats_its_heartbeat_and_metrics_count_ready_processes_per_kind(
    fresh_db_url: str,
) -> None:
    obs = observability.start(
        Settings(metrics_port=0), process="worker:enrich", database_url=worker_url(fresh_db_url)
    )
    try:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:

            def heartbeat() -> Any:
                return conn.execute(
                    "select process, ready, reason from dragonfly.fleet_processes where pid = %s",
                    (os.getpid(),),
                ).fetchone()

            assert wait_for(heartbeat, timeout=10) == ("worker:enrich", False, "starting")
            obs.readiness.set_ready(True)
            assert obs.heartbeat is not None
            obs.heartbeat.beat_now()
            wait_for(lambda: heartbeat()[1], timeout=10, what="the ready heartbeat")
            got = samples(generate_latest(obs.registry).decode())
            assert got[("dragonfly_fleet_processes_ready", (("process", "worker:enrich"),))] == 1
            assert got[("dragonfly_fleet_processes_up", (("process", "worker:outreach"),))] == 0
            assert got[("dragonfly_database_deadlocks_total", ())] >= 0
            assert ("dragonfly_alert_listener_cursor_age_seconds", ()) in got
            # Losing the database (not stopping) counts as a database error.
            obs.readiness.set_ready(False, "database unavailable: connection refused")
            obs.readiness.set_ready(True)
            got = samples(generate_latest(obs.registry).decode())
            assert got[("dragonfly_database_unavailable_total", ())] == 1
    finally:
        obs.close()
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        gone = conn.execute(
            "select count(*) from dragonfly.fleet_processes where pid = %s", (os.getpid(),)
        ).fetchone()
    assert gone == (0,)  # a clean stop removes the row
