"""deploy/grafana/dashboard.json: valid, and every panel reads metrics the fleet exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.unit.test_prometheus_rules import exposed_sample_names
from workers.alerts.metrics import AlertMetrics
from workers.observability.metrics import new_registry

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboard.json"


def expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((panel["title"], target["expr"]))
            walk(panel.get("panels", []))

    walk(board["panels"])
    return found


def all_exported() -> set[str]:
    names = exposed_sample_names()
    registry = new_registry()
    alerts = AlertMetrics(registry)
    alerts.delivered.labels(sink="slack").inc()
    alerts.failed.labels(sink="slack").inc()
    alerts.dead.labels(sink="slack").inc()
    alerts.latency_seconds.labels(sink="slack").observe(0.1)
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(registry).decode()
    names |= {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return names


def test_every_panel_reads_metrics_the_fleet_exports() -> None:
    exported = all_exported()
    exprs = expressions()
    assert len(exprs) >= 15
    for title, expr in exprs:
        for metric in re.findall(r"\bdragonfly_[a-z_]+\b", expr):
            assert metric in exported, f"panel {title!r} reads {metric}, which nothing exports"


def test_every_panel_expression_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    # promtool checks PromQL inside rules: one recording rule per panel expression.
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for n, (_title, expr) in enumerate(expressions()):
        rules += [f"      - record: dashboard:expr{n}", f"        expr: {json.dumps(expr)}"]
    (tmp_path / "dashboard.rules.yml").write_text("\n".join(rules) + "\n")
    done = subprocess.run(
        [promtool, "check", "rules", "dashboard.rules.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
