from __future__ import annotations

from pathlib import Path

import pytest

from workers.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("DRAGONFLY_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)


def test_defaults_need_no_environment() -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.home == Path(".dragonfly")
    assert settings.connect_timeout == 5


def test_database_url_is_read_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:6543/x")
    assert load_settings().database_url == "postgresql://u@db.example:6543/x"


def test_empty_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    assert load_settings().database_url is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x", "invalid setting DATABASE_URL: scheme"),
        ("DRAGONFLY_CONNECT_TIMEOUT", "soon", "invalid setting DRAGONFLY_CONNECT_TIMEOUT"),
        ("DRAGONFLY_CONNECT_TIMEOUT", "0", "invalid setting DRAGONFLY_CONNECT_TIMEOUT"),
        ("DRAGONFLY_LOG_LEVEL", "loud", "invalid setting DRAGONFLY_LOG_LEVEL"),
        ("DRAGONFLY_JOB_TIMEOUTS", '{"enrich": NaN}', "invalid setting DRAGONFLY_JOB_TIMEOUTS"),
        ("DRAGONFLY_JOB_TIMEOUTS", '{"enrich": 1e999}', "invalid setting DRAGONFLY_JOB_TIMEOUTS"),
        (
            "DRAGONFLY_JOB_TIMEOUTS",
            '{"enrich": "soon"}',
            "invalid setting DRAGONFLY_JOB_TIMEOUTS['enrich']",
        ),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message
