"""Facts the docs state that the code decides: each is compared with the code, so a doc
cannot drift from it (the README's settings table has its own test, test_docs_config_table)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.harness import REPO
from workers.cli.config import settings_table
from workers.scheduler.tasks import default_tasks
from workers.settings import Settings

OPERATIONS = REPO / "docs" / "operations.md"
FLEET_SETTINGS = ("metrics_", "scheduler_", "retention_", "fleet_", "enforce_sla_sweep_")


def docs() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following >= 0 else len(text)]


def test_no_doc_states_a_number_of_migrations() -> None:
    # Migrations are added all the time; a count in prose or sample output goes stale.
    counted = re.compile(r"\b\d+\s+(?:new\s+)?migrations?\b|\b\d+\s+migration\(s\)", re.I)
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in docs()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if counted.search(line)
    ]
    assert not found, "state no migration count (it drifts):\n" + "\n".join(found)


def test_operations_lists_exactly_the_scheduler_tasks() -> None:
    table = section(OPERATIONS.read_text(encoding="utf-8"), "## The scheduler")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == {task.name for task in default_tasks(Settings())}


def test_operations_fleet_settings_table_is_generated() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    start = text.index("<!-- fleet-settings:start -->") + len("<!-- fleet-settings:start -->")
    end = text.index("<!-- fleet-settings:end -->")
    expected = settings_table(FLEET_SETTINGS)
    assert text[start:end].strip() == expected, (
        "docs/operations.md's fleet settings table is stale; it should read:\n" + expected
    )


def test_the_embedded_server_version_stated_is_the_one_bundled() -> None:
    from pgserver._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

    answer = subprocess.run(
        [str(POSTGRES_BIN_PATH / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)\.(\d+)", answer)
    assert match, answer
    major, full = match[1], f"{match[1]}.{match[2]}"
    for path in (REPO / "README.md", OPERATIONS):
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert f"embedded PostgreSQL {major} ({full}," in text, path
    # Wherever else a doc names the embedded server's version, it is the same major version.
    for path in docs():
        text = " ".join(path.read_text(encoding="utf-8").split())
        for stated in re.findall(r"embedded PostgreSQL (\d+)", text):
            assert stated == major, path


def test_the_consoles_settings_table_is_generated() -> None:
    text = (REPO / "docs" / "console.md").read_text(encoding="utf-8")
    start = text.index("<!-- console-settings:start -->") + len("<!-- console-settings:start -->")
    end = text.index("<!-- console-settings:end -->")
    expected = settings_table(("console_",))
    assert text[start:end].strip() == expected, (
        "docs/console.md's settings table is stale; it should read:\n" + expected
    )
