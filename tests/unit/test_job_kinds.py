"""Python's list of job kinds: the name rule, DRAGONFLY_HANDLERS, the check against the table."""

from __future__ import annotations

import pytest

from workers.job_kinds import (
    KINDS,
    RegistryMismatch,
    check_kind_name,
    check_registry,
    python_kinds,
)
from workers.settings import ConfigError, load_settings

REGISTERED = dict.fromkeys(KINDS, True)


@pytest.mark.parametrize("kind", ["a", "tally", "case_copilot", "k2", "t" * 40])
def test_a_short_lowercase_identifier_is_a_kind_name(kind: str) -> None:
    assert check_kind_name(kind) == kind


@pytest.mark.parametrize("kind", ["", "Tally", "2k", "_k", "k-k", "k k", "k.k", "t" * 41, "é"])
def test_anything_else_is_not(kind: str) -> None:
    with pytest.raises(ValueError, match="job kind must be a lowercase letter"):
        check_kind_name(kind)


def test_python_kinds_are_the_shipped_ones_then_those_handlers_name() -> None:
    handlers = {"zeta": "m:JOB", "enrich": "m:JOB", "alpha": "m:JOB"}
    assert python_kinds(handlers) == (*KINDS, "alpha", "zeta")
    assert python_kinds({}) == KINDS


def test_a_python_kind_without_a_row_is_one_line_naming_it() -> None:
    with pytest.raises(RegistryMismatch) as caught:
        check_registry(REGISTERED, python=(*KINDS, "tally"))
    assert str(caught.value).startswith("job kind(s) tally not registered in dragonfly.job_kinds")
    assert "\n" not in str(caught.value)


def test_a_kind_to_run_needs_a_row_too() -> None:
    with pytest.raises(RegistryMismatch, match=r"job kind\(s\) tally not registered"):
        check_registry(REGISTERED, python=KINDS, running=["tally"])


def test_running_a_disabled_kind_is_a_warning_not_an_error() -> None:
    rows = REGISTERED | {"outreach": False}
    assert check_registry(rows, python=KINDS, running=["enrich"]) == []
    warnings = check_registry(rows, python=KINDS, running=["outreach"])
    assert warnings == [
        "job kind outreach is disabled: its queue is drained, queue_job refuses new jobs"
    ]


def test_handlers_may_name_a_kind_outside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAGONFLY_HANDLERS", '{"tally": "tests.tally_kind:JOB"}')
    monkeypatch.setenv("DRAGONFLY_JOB_TIMEOUTS", '{"tally": 5, "enrich": 60}')
    settings = load_settings()
    assert settings.job_timeouts == {"tally": 5, "enrich": 60}


def test_a_handler_kind_must_be_a_kind_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAGONFLY_HANDLERS", '{"Tally!": "tests.tally_kind:JOB"}')
    with pytest.raises(ConfigError, match="invalid setting DRAGONFLY_HANDLERS: job kind must be"):
        load_settings()


def test_a_timeout_for_a_kind_python_does_not_know_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRAGONFLY_JOB_TIMEOUTS", '{"tally": 5}')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "invalid setting DRAGONFLY_JOB_TIMEOUTS: unknown kind(s) tally; kinds are enrich,"
    )
