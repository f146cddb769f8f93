"""Finding a kind's job definition, and the worker command's refusals."""

from __future__ import annotations

import pytest

from tests.harness import run_cli
from tests.runtime.handlers import JOB
from workers.job_kinds import default_spec
from workers.runtime.handlers import HandlerNotFound, JobKind, load_job


def test_a_job_definition_loads_from_module_and_attribute() -> None:
    assert load_job("enrich", "tests.runtime.handlers:JOB") is JOB
    assert default_spec("outreach") == "workers.outreach:JOB"


@pytest.mark.parametrize(
    ("kind", "spec", "error"),
    [
        ("Bad-Kind", "tests.runtime.handlers:JOB", "job kind must be a lowercase letter"),
        ("nope", "tests.runtime.handlers:JOB", "defines kind 'enrich'"),
        ("nope", None, "cannot import workers.nope"),
        ("enrich", "tests.runtime.handlers", "module:attribute"),
        ("enrich", "tests.runtime.no_such_module:JOB", "cannot import"),
        ("enrich", "tests.runtime.handlers:MISSING", "has no MISSING"),
        ("enrich", "tests.runtime.handlers:handle", "not a JobKind"),
        ("outreach", "tests.runtime.handlers:JOB", "defines kind 'enrich'"),
    ],
)
def test_bad_job_definitions_are_named(kind: str, spec: str | None, error: str) -> None:
    with pytest.raises(HandlerNotFound, match=error):
        load_job(kind, spec)


def test_a_job_kind_checks_its_own_fields() -> None:
    with pytest.raises(ValueError, match="job kind must be a lowercase letter"):
        JobKind(kind="e-mail", payload=JOB.payload, handle=JOB.handle)
    with pytest.raises(ValueError, match="at most 39"):
        JobKind(kind="k" * 41, payload=JOB.payload, handle=JOB.handle)
    with pytest.raises(ValueError, match="timeout"):
        JobKind(kind="enrich", payload=JOB.payload, handle=JOB.handle, timeout=0)


def test_worker_refuses_a_handler_it_cannot_load(empty_db_url: str) -> None:
    result = run_cli(
        "worker",
        "enrich",
        "--handler",
        "tests.runtime.handlers:nothing",
        env={"DATABASE_URL": empty_db_url},
    )
    assert result.returncode == 2
    assert "has no nothing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_worker_refuses_a_bad_concurrency() -> None:
    result = run_cli("worker", "enrich", "--concurrency", "0")
    assert result.returncode == 2
    assert "--concurrency" in result.stderr


def test_worker_refuses_an_unmigrated_database(empty_db_url: str) -> None:
    result = run_cli(
        "worker",
        "enrich",
        "--handler",
        "tests.runtime.handlers:JOB",
        env={"DATABASE_URL": empty_db_url, "DRAGONFLY_METRICS_PORT": "0"},
    )
    assert result.returncode == 1
    assert "dragonfly db migrate" in result.stderr


def test_per_kind_settings_must_name_known_kinds() -> None:
    result = run_cli("worker", "enrich", env={"DRAGONFLY_JOB_TIMEOUTS": '{"email": 5}'})
    assert result.returncode == 2
    assert "DRAGONFLY_JOB_TIMEOUTS" in result.stderr
    assert "unknown kind(s) email" in result.stderr
