"""The real CLI in a subprocess: configuration errors and the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import run_cli


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root@127.0.0.1/x", "invalid setting DATABASE_URL"),
        ("postgresql://postgres@127.0.0.1:1/x", "cannot connect to 127.0.0.1:1/x"),
        ("postgresql://postgres@no-such-host.invalid/x", "cannot connect to no-such-host.invalid"),
    ],
)
def test_bad_database_url_is_one_clear_line_and_exit_2(url: str, expected: str) -> None:
    result = run_cli("db", "status", env={"DATABASE_URL": url, "DRAGONFLY_CONNECT_TIMEOUT": "2"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dragonfly: ")
    assert expected in lines[0]


def test_bad_argument_exits_2_with_one_line() -> None:
    result = run_cli("db", "frobnicate")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_embedded_default_works_with_no_environment(tmp_path: Path) -> None:
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    try:
        migrate = run_cli("db", "migrate", cwd=str(workdir))
        assert migrate.returncode == 0, migrate.stderr
        assert "migration(s) applied" in migrate.stdout
        assert (workdir / ".dragonfly" / "pgdata" / "PG_VERSION").exists()

        again = run_cli("db", "migrate", cwd=str(workdir))
        assert "nothing to apply" in again.stdout

        state = run_cli("db", "status", cwd=str(workdir))
        assert state.returncode == 0, state.stderr
        assert "server:     PostgreSQL 16" in state.stdout
        assert "queues:     case_copilot, enforce, enrich, outreach" in state.stdout
    finally:
        stopped = run_cli("db", "stop", cwd=str(workdir))
    assert stopped.stdout.strip() == "embedded PostgreSQL stopped"


def test_config_show_masks_the_database_password() -> None:
    env = {
        "DATABASE_URL": "postgresql://app:MARKER-pw-1f2e@127.0.0.1:1/x",
        "DRAGONFLY_ENRICH_VENDOR_API_KEY": "MARKER-key-3c4d",
    }
    for flag in ((), ("--json",)):
        result = run_cli("config", "show", *flag, env=env)
        assert result.returncode == 0, result.stderr
        assert "MARKER" not in result.stdout + result.stderr
        assert "postgresql://app:***@127.0.0.1:1/x" in result.stdout
