"""tests/harness.py's connection-string helpers keep each form they are given."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.harness import url_with_db, with_params

OPTIONS = "-c role=dragonfly_worker"

FORMS = {
    "url": "postgresql://postgres@127.0.0.1:5432/postgres",
    # The embedded server's form: a Unix socket directory in the query string.
    "url with ?host=": "postgresql://postgres:@/postgres?host=/tmp/pgserver-x%20y",
    "key=value": "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
}


@pytest.mark.parametrize("form", FORMS)
def test_with_params_adds_options_to_every_form(form: str) -> None:
    url = FORMS[form]

    changed = with_params(url, options=OPTIONS, user="w", password="p w&?")

    assert changed.startswith("postgresql://") == url.startswith("postgresql://")
    assert changed.count("?") <= 1
    info = conninfo_to_dict(changed)
    expected = {**conninfo_to_dict(url), "options": OPTIONS, "user": "w", "password": "p w&?"}
    assert info == expected


def test_with_params_replaces_a_parameter_already_there() -> None:
    url = with_params(FORMS["url with ?host="], options="-c a=1")

    assert conninfo_to_dict(with_params(url, options="-c b=2"))["options"] == "-c b=2"


@pytest.mark.parametrize("form", FORMS)
def test_url_with_db_points_every_form_at_another_database(form: str) -> None:
    info = conninfo_to_dict(url_with_db(FORMS[form], "other"))

    assert info == {**conninfo_to_dict(FORMS[form]), "dbname": "other"}
