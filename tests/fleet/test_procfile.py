"""The Procfile and how ``dragonfly up`` turns it into children (no processes started)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from workers.cli.common import CommandError
from workers.cli.fleet import plan_children, resolve_argv
from workers.fleet.procfile import (
    DEFAULT_PROCFILE,
    ProcessType,
    ProcfileError,
    checkout_procfile,
    load,
    parse,
)
from workers.job_kinds import KINDS


def test_the_repository_procfile_is_the_built_in_default() -> None:
    assert checkout_procfile().read_text(encoding="utf-8") == DEFAULT_PROCFILE
    names = [t.name for t in parse(DEFAULT_PROCFILE)]
    assert names == [*KINDS, "scheduler", "listener", "console"]


def test_parse_skips_comments_and_blank_lines() -> None:
    text = (
        "# fleet\n\nweb: dragonfly worker enrich --concurrency 4\n  clock :  dragonfly scheduler\n"
    )
    assert parse(text) == [
        ProcessType("web", "dragonfly worker enrich --concurrency 4"),
        ProcessType("clock", "dragonfly scheduler"),
    ]
    assert parse(text)[0].argv == ["dragonfly", "worker", "enrich", "--concurrency", "4"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just a command\n", "Procfile:1: expected 'name: command'"),
        ("a: x\na: y\n", "Procfile:2: process type 'a' appears twice"),
        ("a: echo 'unclosed\n", "Procfile:1: cannot parse command"),
        ("# nothing\n", "Procfile: no process types"),
    ],
)
def test_parse_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ProcfileError, match="^" + message.replace("(", r"\(")):
        parse(text)


def test_load_prefers_the_given_file(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile.dev"
    procfile.write_text("one: dragonfly scheduler\n", encoding="utf-8")
    types, source = load(procfile)
    assert [t.name for t in types] == ["one"]
    assert source == str(procfile)
    with pytest.raises(ProcfileError, match="no such file"):
        load(tmp_path / "missing")


def test_dragonfly_commands_run_this_cli_and_unknown_ones_are_unavailable() -> None:
    subcommands = {"scheduler", "queues"}
    assert resolve_argv(["dragonfly", "scheduler", "--once"], subcommands) == [
        sys.executable,
        "-m",
        "workers.cli",
        "scheduler",
        "--once",
    ]
    assert resolve_argv(["dragonfly", "listen"], subcommands) is None
    assert resolve_argv(["dragonfly"], subcommands) is None
    assert resolve_argv(["sh", "-c", "true"], subcommands) == ["sh", "-c", "true"]
    assert resolve_argv(["no-such-program-here"], subcommands) is None


def test_plan_gives_each_child_its_own_metrics_port_and_skips_unavailable_lines() -> None:
    types = parse(DEFAULT_PROCFILE)
    specs, skipped = plan_children(
        types,
        only=None,
        scale={"scheduler": 2, "outreach": 0},
        metrics_port=9400,
        database_url="postgresql://db/x",
        subcommands={"worker", "scheduler"},
    )
    assert [(s.name, s.env["DRAGONFLY_METRICS_PORT"]) for s in specs] == [
        ("enrich.1", "9400"),
        ("enforce.1", "9401"),
        ("case_copilot.1", "9402"),
        ("scheduler.1", "9403"),
        ("scheduler.2", "9404"),
    ]
    assert all(s.env["DATABASE_URL"] == "postgresql://db/x" for s in specs)
    assert skipped == [
        "listener: command not available here: dragonfly listen",
        "console: command not available here: dragonfly console",
    ]

    only, _ = plan_children(
        types,
        only={"scheduler"},
        scale={},
        metrics_port=0,
        database_url="u",
        subcommands={"scheduler"},
    )
    assert [(s.name, s.env["DRAGONFLY_METRICS_PORT"]) for s in only] == [("scheduler.1", "0")]


def test_plan_rejects_an_unknown_process_type() -> None:
    with pytest.raises(CommandError, match="unknown process type 'web'") as info:
        plan_children(
            parse(DEFAULT_PROCFILE),
            only={"web"},
            scale={},
            metrics_port=9400,
            database_url="u",
            subcommands=set(),
        )
    assert info.value.exit_code == 2
