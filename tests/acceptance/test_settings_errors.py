"""A JSON-valued setting that does not parse is one line naming the variable, exit 2.

pydantic-settings decodes complex fields (dicts, lists) from JSON before validating
them, and its own parse failure used to escape as a 51-line traceback.
"""

from __future__ import annotations

import argparse
import os
import typing
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.harness import run_cli
from workers.cli import build_parser
from workers.settings import ConfigError, Settings, env_name, load_settings

JSON_SETTINGS = sorted(
    env_name(name)
    for name, field in Settings.model_fields.items()
    if typing.get_origin(field.annotation) in (dict, list, set, tuple)
)

# One invocation per top-level command that reads the settings; every command is listed,
# so a new command cannot slip past this test.
COMMANDS: dict[str, list[str]] = {
    "alerts": ["alerts", "list"],
    "config": ["config", "show"],
    "console": ["console"],
    "db": ["db", "status"],
    "demo": ["demo", "--no-fleet"],
    "dlq": ["dlq", "list"],
    "enqueue": ["enqueue", "enrich", "--payload", "{}", "--key", "k"],
    "import": ["import", "simplicity", "tests/data/simplicity_sample.csv"],
    "listen": ["listen"],
    "members": ["members", "list", "--tenant", "default"],
    "queues": ["queues"],
    "scheduler": ["scheduler", "--once"],
    "security": ["security", "report"],
    "tenants": ["tenants", "list"],
    "up": ["up"],
    "worker": ["worker", "enrich"],
}
# Nothing may start: a settings error must come before any connection.
UNREACHABLE = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}


def _top_level_commands() -> set[str]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("the CLI has no commands")


def _assert_one_line_naming(result: object, variable: str) -> None:
    assert getattr(result, "returncode", None) == 2, result
    lines = getattr(result, "stderr", "").strip().splitlines()
    assert len(lines) == 1, getattr(result, "stderr", "")
    assert lines[0].startswith(f"dragonfly: invalid setting {variable}"), lines[0]


def test_the_json_valued_settings_are_found() -> None:
    assert {"DRAGONFLY_JOB_TIMEOUTS", "DRAGONFLY_HANDLERS"} <= set(JSON_SETTINGS)


def test_every_command_is_covered() -> None:
    assert set(COMMANDS) == _top_level_commands()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unparsable_json_setting_is_one_line_for_every_command(command: str) -> None:
    result = run_cli(
        *COMMANDS[command], env={**UNREACHABLE, "DRAGONFLY_JOB_TIMEOUTS": "{bad"}, timeout=60
    )
    _assert_one_line_naming(result, "DRAGONFLY_JOB_TIMEOUTS")
    assert "not valid JSON" in result.stderr


@pytest.mark.parametrize("variable", JSON_SETTINGS)
# Not JSON, JSON of the wrong type, a bad value inside (the property test below draws many more).
@pytest.mark.parametrize("value", ["{bad", "[1, 2]", '{"enrich": [1]}'])
def test_every_json_valued_setting_reports_bad_values_in_one_line(
    variable: str, value: str
) -> None:
    result = run_cli("config", "show", env={**UNREACHABLE, variable: value}, timeout=60)
    _assert_one_line_naming(result, variable)


@contextmanager
def _environment(variable: str, value: str) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("DRAGONFLY_")}
    saved_url = os.environ.pop("DATABASE_URL", None)
    for key in saved:
        del os.environ[key]
    os.environ[variable] = value
    try:
        yield
    finally:
        del os.environ[variable]
        os.environ.update(saved)
        if saved_url is not None:
            os.environ["DATABASE_URL"] = saved_url


# What the environment can carry: any text but NUL (and no lone surrogates).
_ENV_CHARS = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
_ENV_TEXT = st.text(_ENV_CHARS)


@given(
    variable=st.sampled_from(JSON_SETTINGS),
    value=st.one_of(_ENV_TEXT, st.from_regex(r"\{.*", alphabet=_ENV_CHARS)),
)
def test_arbitrary_garbage_in_a_json_setting_is_accepted_or_one_line(
    variable: str, value: str
) -> None:
    with _environment(variable, value):
        try:
            load_settings()
        except ConfigError as exc:
            message = str(exc)
            assert "\n" not in message
            assert message.startswith(f"invalid setting {variable}")
