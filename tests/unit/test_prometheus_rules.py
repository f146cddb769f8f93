"""The Prometheus alerting rules of deploy/prometheus: valid, tested, and about real metrics."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from workers.observability.metrics import (
    DatabaseErrorMetrics,
    FleetHealthCollector,
    PrometheusJobMetrics,
    QueueStatsCollector,
    SchedulerMetrics,
    new_registry,
)
from workers.observability.probe import FleetHealth
from workers.ops.queues import QueueStats

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts.test.yml"
RUNBOOK = REPO / "docs" / "runbooks" / "dead-letters.md"


def exposed_sample_names() -> set[str]:
    """Every sample name a fleet process exposes, from the collectors themselves."""
    registry = new_registry()
    jobs = PrometheusJobMetrics(registry)
    jobs.job_done(queue="enrich", kind="enrich", duration_s=0.1)
    jobs.job_failed(queue="enrich", kind="enrich", duration_s=0.1, retrying=True)
    jobs.job_dead_lettered(queue="enrich", kind="enrich", reason="permanent")
    SchedulerMetrics(registry).task_ran("retention", "ok", 0.1, 0.0)
    stats = QueueStats("enrich", 1, 1, 0, 0, None, 1, 1, 1, 1)
    registry.register(QueueStatsCollector(lambda: [stats]))
    health = FleetHealth([("worker:enrich", 1, 1)], 0, 5)
    registry.register(FleetHealthCollector(lambda: health))
    DatabaseErrorMetrics(registry).lost("database unavailable")
    text = generate_latest(registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def rule_expressions() -> dict[str, str]:
    """alert name -> its expression (the file keeps each on one line)."""
    text = RULES.read_text()
    names = re.findall(r"^\s*- alert: (\S+)$", text, re.MULTILINE)
    exprs = re.findall(r"^\s*expr: (.+)$", text, re.MULTILINE)
    assert len(names) == len(exprs) > 0
    return dict(zip(names, exprs, strict=True))


def test_every_metric_a_rule_reads_is_one_the_fleet_exposes() -> None:
    exposed = exposed_sample_names()
    for alert, expr in rule_expressions().items():
        for metric in re.findall(r"\bdragonfly_[a-z_]+\b", expr):
            assert metric in exposed, f"{alert} reads {metric}, which no collector exposes"


def test_the_piling_threshold_is_the_one_the_runbook_documents() -> None:
    expr = rule_expressions()["DragonflyDeadLettersPiling"]
    threshold = re.fullmatch(
        r"sum\(max by \(queue\) \(dragonfly_queue_dead_letters\)\) > (\d+)", expr
    )
    assert threshold is not None, expr
    runbook = RUNBOOK.read_text()
    assert "DragonflyDeadLettersPiling" in runbook
    assert f"more than {threshold.group(1)} open dead letters" in runbook
    assert "## Too many open dead letters" in runbook  # the rule's runbook anchor


def test_the_rules_pass_promtool_check_and_their_unit_tests(promtool: str) -> None:
    for command in (
        [promtool, "check", "rules", RULES.name],
        [promtool, "test", "rules", RULE_TESTS.name],
    ):
        done = subprocess.run(
            command, cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_has_a_unit_test_where_it_fires_and_one_where_it_does_not() -> None:
    text = RULE_TESTS.read_text()
    silent = set(re.findall(r"alertname: (\S+)\n\s*exp_alerts: \[\]", text))
    firing = set(re.findall(r"alertname: (\S+)\n\s*exp_alerts:\n\s*- exp_labels:", text))
    rules = set(rule_expressions())
    assert rules - silent == set(), "rules never tested silent"
    assert rules - firing == set(), "rules never tested firing"


def test_every_rule_names_a_runbook_that_exists() -> None:
    text = RULES.read_text()
    for link in re.findall(r"^\s*runbook: (\S+)$", text, re.MULTILINE):
        path, _, anchor = link.partition("#")
        doc = REPO / path
        assert doc.is_file(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", doc.read_text(), re.MULTILINE)
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, link
