"""The README's configuration table is the one the Settings model generates."""

from __future__ import annotations

from tests.harness import REPO
from workers.cli.config import settings_table


def test_readme_lists_every_setting_exactly_as_generated() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- config-table:start -->") + len("<!-- config-table:start -->")
    end = readme.index("<!-- config-table:end -->")
    assert readme[start:end].strip() == settings_table(), (
        "README's configuration table is stale: regenerate it with `dragonfly config table`"
    )
