"""The CLI's argument errors speak of commands and values, not of argparse's internals."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import run_cli
from workers.cli import build_parser

# Values no argument type accepts; types that take any text (paths, names) are left out.
BOGUS = "not-a-value!"
ANY_TEXT = (str, Path)


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def _groups() -> list[tuple[tuple[str, ...], list[str]]]:
    """Every parser that has subcommands, with their names."""
    return [
        (path, list(action.choices))
        for path, parser in _walk(build_parser())
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    ]


def _typed_arguments() -> list[tuple[str, list[str]]]:
    """One command line per argument type in use, giving that type a bad value."""
    seen: dict[str, list[str]] = {}
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if action.type is None or action.type in ANY_TEXT:
                continue
            name = getattr(action.type, "__name__", repr(action.type))
            if name in seen:
                continue
            option = action.option_strings[:1]
            seen[name] = [*path, *option, BOGUS]
    return sorted(seen.items())


def _one_error_line(argv: list[str]) -> str:
    result = run_cli(*argv, timeout=60)
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("path", "choices"), _groups(), ids=lambda v: " ".join(v) or "top")
def test_a_missing_subcommand_names_the_choices(path: tuple[str, ...], choices: list[str]) -> None:
    line = _one_error_line(list(path))
    assert "required" not in line
    assert "_command" not in line
    assert line.endswith("missing COMMAND: choose one of " + ", ".join(choices)), line


@pytest.mark.parametrize(("path", "choices"), _groups(), ids=lambda v: " ".join(v) or "top")
def test_an_unknown_subcommand_names_the_choices(path: tuple[str, ...], choices: list[str]) -> None:
    line = _one_error_line([*path, "frobnicate"])
    assert "_command" not in line
    assert "argument COMMAND: invalid choice: 'frobnicate'" in line
    assert all(repr(choice) in line for choice in choices), line


def test_every_argument_type_is_covered() -> None:
    names = {name for name, _argv in _typed_arguments()}
    assert {"positive_int", "uuid", "when"} <= names


@pytest.mark.parametrize(("type_name", "argv"), _typed_arguments(), ids=lambda v: str(v))
def test_a_bad_value_says_what_was_expected(type_name: str, argv: list[str]) -> None:
    line = _one_error_line(argv)
    assert not re.search(r"invalid [\w.]+ value", line), line  # argparse's own wording
    assert type_name not in line
    assert f"got {BOGUS!r}" in line, line
