"""``dragonfly console`` as a command: its refusals are one line with the documented exit
code, and on the embedded default it generates an admin token, prints it once, and that
token signs in."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.console.support import ADMIN_TOKEN, ConsoleProcess, console_url
from tests.fleet.helpers import free_ports
from tests.harness import run_cli


def one_line(result: object, code: int, pattern: str) -> None:
    assert getattr(result, "returncode", None) == code, result
    lines = getattr(result, "stderr", "").strip().splitlines()
    assert len(lines) == 1, getattr(result, "stderr", "")
    assert re.search(pattern, lines[0]), lines[0]


def test_a_bad_port_is_refused() -> None:
    one_line(run_cli("console", "--port", "0"), 2, r"--port: expected a positive whole number")
    one_line(run_cli("console", "--port", "70000"), 2, r"^dragonfly: --port must be 1 to 65535")
    one_line(
        run_cli("console", env={"DRAGONFLY_CONSOLE_PORT": "x"}),
        2,
        r"^dragonfly: invalid setting DRAGONFLY_CONSOLE_PORT",
    )


def test_with_a_database_url_and_no_way_to_sign_in_it_refuses_to_start(
    fresh_db_url: str,
) -> None:
    one_line(
        run_cli("console", env={"DATABASE_URL": fresh_db_url}),
        2,
        r"nobody could sign in to the console: set DRAGONFLY_CONSOLE_JWT_SECRET",
    )


def test_an_unmigrated_or_unreachable_database_is_one_line(empty_db_url: str) -> None:
    admin = {"DRAGONFLY_CONSOLE_ADMIN_TOKEN": ADMIN_TOKEN}
    one_line(
        run_cli("console", env={"DATABASE_URL": empty_db_url, **admin}),
        1,
        r"no console schema; run `dragonfly db migrate` first",
    )
    one_line(
        run_cli("console", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x", **admin}),
        2,
        r"^dragonfly: cannot connect to 127.0.0.1:1/x",
    )


def test_a_taken_port_is_one_line_naming_the_setting(
    fresh_db_url: str, console_login: None
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli(
            "console",
            env={
                "DATABASE_URL": console_url(fresh_db_url),
                "DRAGONFLY_CONSOLE_ADMIN_TOKEN": ADMIN_TOKEN,
                "DRAGONFLY_CONSOLE_PORT": str(port),
                "DRAGONFLY_METRICS_PORT": "0",
            },
        )
    one_line(
        result, 2, rf"console port {port} on 127.0.0.1 is not available.*DRAGONFLY_CONSOLE_PORT"
    )


@pytest.mark.slow
def test_on_the_embedded_default_it_prints_an_admin_token_once_that_signs_in(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    env = {"DRAGONFLY_HOME": str(home)}
    migrated = run_cli("db", "migrate", env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    console = ConsoleProcess("", tmp_path, free_ports(1), {"DRAGONFLY_HOME": str(home)})
    try:
        console.wait_started(timeout=60)
        deadline = time.monotonic() + 10
        while "admin token" not in console.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        printed = re.findall(
            r"^console admin token \(this run only.*\): (\S+)$", console.output(), re.M
        )
        assert len(printed) == 1, console.output()
        with httpx.Client(base_url=console.url, timeout=30, follow_redirects=True) as http:
            page = http.get("/sign-in")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf
            answer = http.post("/sign-in", data={"csrf": csrf[1], "token": printed[0]})
            assert answer.status_code == 200
            assert "admin (static token)" in answer.text
            assert answer.url.path == "/queues"
    finally:
        console.close()
        stopped = run_cli("db", "stop", "--force", env=env, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
    assert console.output().count(printed[0]) == 1  # printed once, never logged


@pytest.mark.slow
def test_sigterm_stops_it_cleanly_and_its_heartbeat_row_goes(
    fresh_db_url: str, console_login: None, tmp_path: Path
) -> None:
    import psycopg

    from tests.fleet.helpers import wait_for

    console = ConsoleProcess(
        console_url(fresh_db_url),
        tmp_path,
        free_ports(1),
        {"DRAGONFLY_CONSOLE_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    try:
        console.wait_started()
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:

            def beating() -> object:
                return conn.execute(
                    "select ready from dragonfly.fleet_processes where process = 'console'"
                    " and pid = %s",
                    (console.proc.pid,),
                ).fetchone()

            wait_for(lambda: beating() == (True,), timeout=20, what="the console's ready heartbeat")
            console.proc.terminate()
            assert console.proc.wait(20) == 0, console.output()
            assert beating() is None
    finally:
        console.close()
    assert "shutdown_requested" in console.output()
