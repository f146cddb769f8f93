"""``dragonfly up`` as a real process: migrate, supervise, restart, stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.fleet.helpers import free_ports, wait_for
from tests.harness import REPO, child_env, run_cli


def healthz_pid(port: int) -> int | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return None
    return int(response.json()["pid"]) if response.status_code == 200 else None


def is_leader(port: int) -> bool:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return "dragonfly_scheduler_leader 1.0" in text


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: it no longer runs.
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split(")")[-1].split()[0] == "Z"


@pytest.mark.slow
def test_up_migrates_runs_restarts_a_killed_child_and_stops_cleanly(
    empty_db_url: str, tmp_path: Path
) -> None:
    base = free_ports(2)
    env = child_env(
        {
            # The owner's login, not the fleet's: `up` migrates the empty database first
            # and its children share its DATABASE_URL.
            "DATABASE_URL": empty_db_url,
            "DRAGONFLY_METRICS_PORT": str(base),
            "DRAGONFLY_LOG_FORMAT": "json",
            "DRAGONFLY_SCHEDULER_TICK_SECONDS": "0.2",
            "DRAGONFLY_FLEET_STOP_TIMEOUT": "20",
        }
    )
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "up",
            "--only",
            "scheduler",
            "--scale",
            "scheduler=2",
        ],
        env=env,
        cwd=str(REPO),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        pids = [
            wait_for(lambda p=p: healthz_pid(p), timeout=60, what=f"child on port {p}")
            for p in (base, base + 1)
        ]
        assert len(set(pids)) == 2
        with psycopg.connect(empty_db_url) as conn:
            tables = conn.execute("select to_regclass('dragonfly.scheduler_runs')").fetchone()
        assert tables == ("dragonfly.scheduler_runs",)  # `up` migrated the empty database
        # Two schedulers, one leader.
        wait_for(lambda: is_leader(base) or is_leader(base + 1), timeout=30, what="a leader")
        assert [is_leader(base), is_leader(base + 1)].count(True) == 1

        os.kill(pids[0], signal.SIGKILL)
        restarted = wait_for(
            lambda: (pid := healthz_pid(base)) and pid != pids[0] and pid,
            timeout=60,
            what="the killed child to come back",
        )
        assert healthz_pid(base + 1) == pids[1]  # the other one was left alone

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        log.close()
    output = (tmp_path / "up.log").read_text()
    for pid in (restarted, pids[1]):
        assert gone(pid), output
    assert '"fleet_process_exited"' in output
    assert '"fleet_stopped"' in output
    assert '"fleet_process_killed"' not in output  # both stopped within the grace period


def test_up_with_an_unknown_process_type_is_one_line_and_exit_2(fresh_db_url: str) -> None:
    result = run_cli("up", "--only", "web", env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown process type 'web'" in lines[0]


def test_up_with_nothing_runnable_fails(fresh_db_url: str, tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("ghost: dragonfly no-such-command\n", encoding="utf-8")
    result = run_cli(
        "up", "--procfile", str(procfile), env={"DATABASE_URL": fresh_db_url}, cwd=str(tmp_path)
    )
    assert result.returncode == 1
    assert "nothing to run" in result.stderr
