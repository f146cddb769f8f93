"""Under ``dragonfly up``, children share stderr: every line must stay one JSON object."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.fleet.helpers import wait_for
from tests.harness import REPO, child_env

CHILDREN = 4
LINES = 3000


def test_children_logging_at_once_under_up_write_whole_json_lines(
    empty_db_url: str, tmp_path: Path
) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(f"chatter: {sys.executable} -m tests.fleet.log_chatter {LINES}\n")
    env = child_env(
        {
            # What the Dockerfile and the systemd units set: each write() reaches the pipe.
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": empty_db_url,  # --no-migrate, and the children do not connect
            "DRAGONFLY_HOME": str(tmp_path / "home"),  # the fleet's lock is per home
            "DRAGONFLY_METRICS_PORT": "0",
            "DRAGONFLY_LOG_FORMAT": "json",
            "DRAGONFLY_FLEET_STOP_TIMEOUT": "20",
        }
    )
    argv = ["up", "--no-migrate", "--procfile", str(procfile), "--scale", f"chatter={CHILDREN}"]
    up = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", *argv],
        env=env,
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert up.stderr is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(up.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: sum(b'"chatter_done"' in line for line in list(lines)) >= CHILDREN,
            timeout=120,
            what=f"{CHILDREN} children to log {LINES} lines each",
        )
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        reader.join(timeout=30)
        up.stderr.close()

    assert up.returncode == 0
    broken = []
    for line in lines:
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            broken.append(line[:200])
    assert not broken, f"{len(broken)} of {len(lines)} lines are not one JSON object: {broken[:3]}"
    events = [json.loads(line) for line in lines]
    chatter = [e for e in events if e["event"] == "chatter"]
    assert len(chatter) == CHILDREN * LINES
    library = [e for e in events if e.get("logger") == "httpx"]
    assert len(library) == CHILDREN * LINES // 10
    assert {e["level"] for e in library} == {"info"}
