"""One fleet per home: a second ``dragonfly up`` refuses, a taken metrics port fails, and
``up`` says once when the whole fleet is ready. Real ``up`` processes throughout."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.fleet.helpers import free_ports, wait_for
from tests.harness import REPO, child_env, run_cli, worker_url
from workers.db import embedded
from workers.fleet import lock as fleet_lock

# The scheduler alone is the lightest fleet that still has a /readyz.
ONLY = ("--only", "scheduler")


def fleet_env(home: Path, port: int, url: str | None) -> dict[str, str]:
    """On a test database (``url``) the fleet logs in as a dragonfly_worker member and does
    not migrate (the clone is migrated). The embedded default (``url`` None) is the
    server's superuser by design, and `up` migrates the new server."""
    env = {"DRAGONFLY_HOME": str(home), "DRAGONFLY_METRICS_PORT": str(port)}
    env.update(DRAGONFLY_LOG_FORMAT="json", DRAGONFLY_SCHEDULER_TICK_SECONDS="0.2")
    if url:
        env["DATABASE_URL"] = worker_url(url)
    return env


def up_argv(env: dict[str, str]) -> list[str]:
    return ["up", *ONLY, *(["--no-migrate"] if "DATABASE_URL" in env else [])]


class Fleet:
    """A running ``dragonfly up`` with its output in files."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.proc, self.out, self.err = proc, out, err

    def stdout(self) -> str:
        return self.out.read_text()

    def wait_ready(self, timeout: float = 90) -> str:
        def ready() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"up exited {self.proc.returncode}: {self.err.read_text()}")
            return next((ln for ln in self.stdout().splitlines() if "fleet ready" in ln), None)

        return wait_for(ready, timeout=timeout, interval=0.1, what="the fleet ready line")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@contextmanager
def running_process(
    argv: list[str], env: dict[str, str], tmp_path: Path, name: str = "cli"
) -> Iterator[subprocess.Popen[bytes]]:
    """The real CLI as a background process, killed on the way out if still running."""
    full = child_env(env)
    with (tmp_path / f"{name}.out").open("wb") as o, (tmp_path / f"{name}.err").open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *argv],
            env=full,
            cwd=str(REPO),
            stdout=o,
            stderr=e,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def running_up(env: dict[str, str], tmp_path: Path, name: str) -> Iterator[Fleet]:
    with running_process(up_argv(env), env, tmp_path, name) as proc:
        yield Fleet(proc, tmp_path / f"{name}.out", tmp_path / f"{name}.err")


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.slow
def test_on_a_shared_database_one_fleet_per_home_and_scale_out_with_another_home(
    fresh_db_url: str, tmp_path: Path
) -> None:
    base = free_ports(2)
    home = tmp_path / "host-a"
    with running_up(fleet_env(home, base, fresh_db_url), tmp_path, "first") as first:
        line = first.wait_ready()
        assert line.startswith("fleet ready: 1 process in "), line
        assert line.endswith(f"(scheduler.1); /readyz on 127.0.0.1:{base}"), line

        again_env = fleet_env(home, base + 1, fresh_db_url)
        again = run_cli(*up_argv(again_env), env=again_env)
        assert again.returncode == 1
        refused = one_line(again)
        assert refused.startswith("dragonfly: a fleet is already running in this home")
        assert f"pid {first.proc.pid}" in refused

        # Another host is another home: the same database takes a second fleet.
        other = fleet_env(tmp_path / "host-b", base + 1, fresh_db_url)
        with running_up(other, tmp_path, "second") as second:
            second.wait_ready()
            assert second.stop() == 0
        assert first.stop() == 0
    ready_lines = [ln for ln in first.stdout().splitlines() if ln.startswith("fleet ")]
    assert ready_lines == [line]  # said once


@pytest.mark.slow
def test_a_killed_fleet_leaves_no_stale_lock(fresh_db_url: str, tmp_path: Path) -> None:
    base = free_ports(1)
    env = fleet_env(tmp_path / "home", base, fresh_db_url)
    with running_up(env, tmp_path, "doomed") as doomed:
        doomed.wait_ready()
        doomed.stop(signal.SIGKILL)
    locks = list((tmp_path / "home").glob("fleet*.lock"))
    assert len(locks) == 1  # the file stays behind
    # Its scheduler child gets SIGTERM when the parent dies and holds the lock (and its
    # port) until it has stopped; then nothing holds either.
    wait_for(lambda: fleet_lock.holder(locks[0]) is None, timeout=60, what="the lock")
    wait_for(lambda: port_free(base), timeout=60, what=f"port {base} to be free")
    with running_up(env, tmp_path, "next") as after:
        after.wait_ready()
        assert after.stop() == 0


def port_free(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_up_with_a_metrics_port_in_use_fails_in_one_line(fresh_db_url: str, tmp_path: Path) -> None:
    with taken_port() as port:
        env = fleet_env(tmp_path / "home", port, fresh_db_url)
        result = run_cli(*up_argv(env), env=env)
    assert result.returncode == 2
    line = one_line(result)
    assert f"metrics port {port} on 127.0.0.1 for scheduler.1 is not available" in line
    assert "DRAGONFLY_METRICS_PORT" in line
    assert "fleet_process_started" not in result.stderr


def test_a_process_with_its_metrics_port_in_use_fails_in_one_line(fresh_db_url: str) -> None:
    with taken_port() as port:
        result = run_cli(
            "scheduler",
            env={"DATABASE_URL": worker_url(fresh_db_url), "DRAGONFLY_METRICS_PORT": str(port)},
            timeout=60,
        )
    assert result.returncode == 2
    line = one_line(result)
    assert f"metrics port {port} on 127.0.0.1 is not available" in line
    assert "DRAGONFLY_METRICS_PORT" in line


def connected_dragonfly_clients(home: Path) -> list[str]:
    url = embedded.running_url(home)
    if url is None:
        return []
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select application_name from pg_stat_activity"
            " where application_name like 'dragonfly-%'"
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A home outside pytest's base temp, whose permissions a concurrent pytest resets to
    0700 (run as root, pgserver runs PostgreSQL as another user that must reach it)."""
    home = Path(tempfile.mkdtemp(prefix="dragonfly-home-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_on_the_embedded_server_one_fleet_per_home_and_db_stop_refuses_while_used(
    tmp_path: Path, embedded_home: Path
) -> None:
    home = embedded_home
    base = free_ports(1)
    env = fleet_env(home, base, None)
    try:
        with running_up(env, tmp_path, "embedded") as fleet:
            fleet.wait_ready(timeout=180)
            again = run_cli(*up_argv(env), env={**env, "DRAGONFLY_METRICS_PORT": "0"})
            assert again.returncode == 1
            assert one_line(again).startswith("dragonfly: a fleet is already running in this home")

            stop = run_cli("db", "stop", env=env)
            assert stop.returncode == 1
            line = one_line(stop)
            assert f"a fleet (`dragonfly up`, pid {fleet.proc.pid}) is using it" in line
            assert "--force" in line
            assert embedded.running_url(home) is not None  # still running
            assert fleet.stop() == 0

        # A process started on its own counts too: its connections are labelled.
        alone = {**env, "DRAGONFLY_METRICS_PORT": "0"}
        with running_process(["scheduler"], alone, tmp_path) as scheduler:
            wait_for(
                lambda: "dragonfly-scheduler" in connected_dragonfly_clients(home),
                timeout=60,
                what="the scheduler's connection",
            )
            stop = run_cli("db", "stop", env=env)
            assert stop.returncode == 1
            assert "dragonfly processes are connected to it: dragonfly-scheduler" in one_line(stop)
            forced = run_cli("db", "stop", "--force", env=env)
            assert forced.returncode == 0, forced.stderr
            assert forced.stdout.strip() == "embedded PostgreSQL stopped"
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(timeout=60)
    finally:
        run_cli("db", "stop", "--force", env=env)


def test_the_processes_of_a_killed_fleet_hold_the_lock_until_they_stop(
    fresh_db_url: str, tmp_path: Path
) -> None:
    # A child that shrugs off the SIGTERM it gets when its supervisor dies, and says when
    # it is ready to (a SIGTERM before that would end it at once).
    ignoring = tmp_path / "ignoring-sigterm"
    stubborn = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f" open({str(ignoring)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    procfile = tmp_path / "Procfile"
    procfile.write_text(f'stubborn: {sys.executable} -c "{stubborn}"\n', encoding="utf-8")
    env = fleet_env(tmp_path / "home", 0, fresh_db_url)
    argv = ["up", "--procfile", str(procfile), "--no-migrate"]
    with running_process(argv, env, tmp_path, "killed") as up:
        wait_for(lambda: ignoring.exists() and ignoring.read_text(), timeout=60, what="the child")
        up.kill()
        up.wait()
    child = int(ignoring.read_text())
    try:
        refused = run_cli(*argv, env=env, timeout=60)
        assert refused.returncode == 1
        assert f"the processes of pid {up.pid}, which are still stopping" in one_line(refused)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    lock = next((tmp_path / "home").glob("fleet*.lock"))
    wait_for(lambda: fleet_lock.holder(lock) is None, timeout=30, what="the lock to be free")
