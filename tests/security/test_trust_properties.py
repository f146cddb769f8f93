"""Property tests of the trust rules: no generated caller outside the internal level gets a
payload-named actor into an audit field; the timestamp parser accepts ISO 8601 and nothing
else.

The audit rule is exercised through a throwaway SECURITY DEFINER function in pg_temp (the
way every RPC reaches dragonfly.audit_actor(): as its owner, with the caller's role still
set), inside the ``db`` fixture's rolled-back transaction."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Conn = psycopg.Connection[Any]

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BLANK = " \t\r\n"  # what the database trims from names and claims
NOT_INTERNAL = ("anon", "authenticated", "enforcement_operator")
INTERNAL = ("service_role", "dragonfly_worker")
ISO_8601 = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?"
)

names = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=250,
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.uuids().map(str), names, st.integers()),
        "email": st.one_of(st.emails(), names, st.none()),
    },
)


@pytest.fixture
def audit(db: Conn) -> Conn:
    db.execute(
        "create function pg_temp.audit(p_named text) returns jsonb language sql security definer"
        " set search_path = '' as $$ select pg_catalog.jsonb_build_object("
        "'recorded', dragonfly.audit_actor(p_named), 'identity', dragonfly.caller_actor(),"
        "'level', dragonfly.caller_trust_level()) $$"
    )
    return db


def recorded(conn: Conn, role: str, jwt: dict[str, Any], named: str) -> dict[str, Any]:
    with conn.transaction(force_rollback=True):
        conn.execute(f"set local role {role}")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)", (json.dumps({"role": role} | jwt),)
        )
        row = conn.execute("select pg_temp.audit(%s)", (named,)).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


@SETTINGS
@given(role=st.sampled_from(NOT_INTERNAL), jwt=claims, named=names)
def test_no_caller_below_internal_records_a_name_of_its_choosing(
    audit: Conn, role: str, jwt: dict[str, Any], named: str
) -> None:
    out = recorded(audit, role, jwt, named)
    identity = out["identity"]
    assert out["level"] == ("operator" if role == "enforcement_operator" else "public")
    assert out["recorded"].startswith(identity)
    assert len(out["recorded"]) <= max(200, len(identity))
    if out["recorded"] != identity:
        assert out["recorded"].startswith(f"{identity} (on behalf of ")
    # The identity comes from the session: the JWT's string email or sub, else the role.
    email, sub = jwt.get("email"), jwt.get("sub")
    expected = next(
        (v.strip(BLANK)[:200] for v in (email, sub) if isinstance(v, str) and v.strip(BLANK)),
        role,
    )
    assert identity == expected


@SETTINGS
@given(role=st.sampled_from(INTERNAL), jwt=claims, named=names)
def test_internal_callers_record_the_name_they_give(
    audit: Conn, role: str, jwt: dict[str, Any], named: str
) -> None:
    out = recorded(audit, role, jwt, named)
    assert out["level"] == "internal"
    assert out["recorded"] == (named.strip(BLANK) or out["identity"])


def parse(conn: Conn, value: str) -> datetime | None:
    row = conn.execute("select enforcement_private.iso_timestamptz(%s)", (value,)).fetchone()
    assert row is not None
    parsed: datetime | None = row[0]
    return parsed


@SETTINGS
@given(
    value=st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        max_size=40,
    )
    | st.sampled_from(
        ["tomorrow", "J2461000", "1/2/2027", "epoch", "infinity", "-infinity", "now", "today"]
    )
)
def test_the_parser_accepts_nothing_but_iso_8601(db: Conn, value: str) -> None:
    if parse(db, value) is not None:
        assert ISO_8601.fullmatch(value), value


@SETTINGS
@given(
    at=st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30)),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15),
    separator=st.sampled_from(["T", " "]),
)
def test_every_iso_8601_timestamp_is_read_as_the_instant_it_names(
    db: Conn, at: datetime, offset_minutes: int, separator: str
) -> None:
    aware = at.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    parsed = parse(db, aware.isoformat(sep=separator))
    assert parsed is not None
    assert parsed == aware.astimezone(UTC)
