"""Real ``dragonfly listen`` processes: outage and restart, two listeners at once, a crash.

Each listener is ``python -m workers.cli listen`` with its log (JSON lines) in a file the
test polls; readiness is its ``listener_ready`` line, logged after the start-up catch-up.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.alerts.fakes import FakeSlack, deliveries, event_ids_of, log_event, wait_until
from tests.harness import REPO, child_env, run_cli, worker_url

Conn = psycopg.Connection[Any]

pytestmark = pytest.mark.slow


class ListenerProcess:
    def __init__(self, name: str, url: str, slack: FakeSlack, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        env = child_env(
            {
                "DATABASE_URL": worker_url(url),  # a member of dragonfly_worker, as deployed
                "DRAGONFLY_SLACK_WEBHOOK_URL": slack.url,
                "DRAGONFLY_METRICS_PORT": "0",
                "DRAGONFLY_LOG_FORMAT": "json",
                "DRAGONFLY_ALERT_BACKOFF_BASE_SECONDS": "0.05",
            }
        )
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "listen", "--name", name],
            env=env,
            cwd=str(REPO),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def events(self) -> list[dict[str, Any]]:
        # The listener may be writing its last line while we read: only whole lines count.
        text = self.log_path.read_text()
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log_path.read_text()}"
            return any(e.get("event") == "listener_ready" for e in self.events())

        wait_until(ready, timeout=60, what=f"{self.name} ready")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code


@pytest.fixture
def processes(tmp_path: Path) -> Any:
    started: list[ListenerProcess] = []

    def start(name: str, url: str, slack: FakeSlack) -> ListenerProcess:
        proc = ListenerProcess(name, url, slack, tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop(signal.SIGKILL)


def delivered_count(url: str) -> int:
    return sum(d["status"] == "delivered" for d in deliveries(url))


def test_outage_then_restart_delivers_every_alert_once(
    conn: Conn, case_id: UUID, slack: FakeSlack, fresh_db_url: str, processes: Any
) -> None:
    first = processes("listener-a", fresh_db_url, slack)
    first.wait_ready()
    before = log_event(conn, case_id)
    wait_until(lambda: delivered_count(fresh_db_url) == 1, what="the first alert")
    assert first.stop() == 0

    during = [log_event(conn, case_id, "garnishment_served") for _ in range(100)]
    assert len(slack.snapshot()) == 1  # nobody listening

    second = processes("listener-b", fresh_db_url, slack)
    second.wait_ready()
    wait_until(lambda: delivered_count(fresh_db_url) == 101, timeout=60, what="101 deliveries")
    assert second.stop() == 0

    posted = Counter(event_ids_of(slack.snapshot()))
    assert set(posted) == {str(e) for e in [before, *during]}
    assert set(posted.values()) == {1}
    caught_up = [e for e in second.events() if e.get("event") == "listener_caught_up"]
    assert sum(e["events"] for e in caught_up) == 100

    # A restart repeats nothing: its start-up catch-up (done before listener_ready) finds
    # no unrouted event and no due delivery.
    third = processes("listener-c", fresh_db_url, slack)
    third.wait_ready()
    assert third.stop() == 0
    assert len(slack.snapshot()) == 101


def test_two_listener_processes_deliver_each_alert_once(
    conn: Conn, case_id: UUID, slack: FakeSlack, fresh_db_url: str, processes: Any
) -> None:
    pair = [processes(f"listener-{n}", fresh_db_url, slack) for n in (1, 2)]
    for proc in pair:
        proc.wait_ready()

    logged = [log_event(conn, case_id) for _ in range(100)]

    wait_until(lambda: delivered_count(fresh_db_url) == 100, timeout=60, what="100 deliveries")
    for proc in pair:
        assert proc.stop() == 0
    posted = Counter(event_ids_of(slack.snapshot()))
    assert set(posted) == {str(e) for e in logged}
    assert set(posted.values()) == {1}
    by = Counter(d["delivered_by"] for d in deliveries(fresh_db_url))
    assert set(by) <= {"listener-1", "listener-2"}
    # Both processes were notified of every event; which one claimed each is a race.
    delivered_per_process = [
        sum(1 for e in proc.events() if e.get("event") == "alert_delivered") for proc in pair
    ]
    assert sum(delivered_per_process) == 100


def test_a_killed_listener_loses_nothing(
    conn: Conn, case_id: UUID, slack: FakeSlack, fresh_db_url: str, processes: Any
) -> None:
    victim = processes("victim", fresh_db_url, slack)
    victim.wait_ready()
    logged = [log_event(conn, case_id) for _ in range(30)]
    wait_until(lambda: delivered_count(fresh_db_url) >= 1, what="some deliveries")
    victim.stop(signal.SIGKILL)

    survivor = processes("survivor", fresh_db_url, slack)
    survivor.wait_ready()
    wait_until(lambda: delivered_count(fresh_db_url) == 30, timeout=60, what="30 deliveries")
    assert survivor.stop() == 0

    posted = Counter(event_ids_of(slack.ok_posts()))
    assert set(posted) == {str(e) for e in logged}
    # At least once: a kill between the POST and the commit may repeat one alert, never more.
    assert sum(posted.values()) - len(posted) <= 1


def test_the_webhook_url_stays_out_of_logs_deliveries_and_output(
    conn: Conn, case_id: UUID, fresh_db_url: str, processes: Any
) -> None:
    marker = f"MARKER-webhook-{uuid4().hex}"
    slack = FakeSlack(script=[404], echo=True, token=marker)  # the refusal quotes the URL path
    try:
        listener = processes("listener", fresh_db_url, slack)
        listener.wait_ready()
        log_event(conn, case_id)
        wait_until(lambda: any(d["status"] == "dead" for d in deliveries(fresh_db_url)))
        log_event(conn, case_id)
        wait_until(lambda: delivered_count(fresh_db_url) == 1, what="the second alert")
        assert listener.stop() == 0
    finally:
        slack.close()
    assert all(marker in post.path for post in slack.snapshot())

    env = {"DATABASE_URL": fresh_db_url, "DRAGONFLY_SLACK_WEBHOOK_URL": slack.url}
    outputs = [run_cli("alerts", "list", *flag, env=env) for flag in ((), ("--json",))]
    outputs.append(run_cli("config", "show", env=env))
    dead = next(d for d in deliveries(fresh_db_url) if d["status"] == "dead")
    assert "404" in dead["last_error"]
    assert "internal_error for POST" in dead["last_error"]  # the echo is kept, scrubbed
    texts = [listener.log_path.read_text(), str(deliveries(fresh_db_url))]
    texts += [o.stdout + o.stderr for o in outputs]
    for text in texts:
        assert marker not in text
    # httpx's own request lines are JSON now, host kept and path masked.
    host = slack.url.split("/services/")[0]
    requests = [e for e in listener.events() if e.get("logger") == "httpx"]
    assert len(requests) == 2
    assert all(f"POST {host}/***" in e["event"] for e in requests)
