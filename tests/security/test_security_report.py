"""``dragonfly security report`` against a migrated database: the public surface is the
spec's (anon and authenticated may execute exactly queue_job, request_case_copilot and
log_call_outcome in public, and write no table; signed-in users read what their tenants
hold), the policy table is the registry's, the report follows grants and policy rows as they
change, and bad arguments are one line."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.harness import run_cli

Conn = psycopg.Connection[Any]

SPEC_PUBLIC_RPCS = {"queue_job", "request_case_copilot", "log_call_outcome"}


def report(url: str, *args: str) -> Any:
    return run_cli("security", "report", *args, env={"DATABASE_URL": url})


def as_json(url: str, *args: str) -> dict[str, Any]:
    result = report(url, "--json", *args)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def role(data: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(r for r in data["roles"] if r["role"] == name))


def functions(data: dict[str, Any], name: str, schema: str) -> set[str]:
    return {f["name"] for f in role(data, name)["functions"] if f["schema"] == schema}


def kind(data: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(k for k in data["kinds"] if k["kind"] == name))


def level(data: dict[str, Any], kind_name: str, level_name: str) -> dict[str, Any]:
    return dict(next(lv for lv in kind(data, kind_name)["levels"] if lv["level"] == level_name))


def section(text: str, title: str) -> list[list[str]]:
    """The rows (split on whitespace, header first) of the table under ``title``."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_the_public_roles_may_execute_exactly_the_spec_rpcs_and_write_nothing(
    session_db_url: str,
) -> None:
    data = as_json(session_db_url)
    assert [r["role"] for r in data["roles"]] == [
        "anon",
        "authenticated",
        "service_role",
        "enforcement_operator",
        "dragonfly_worker",
    ]
    lookups = {
        "enforcement_event_kind_lookup": ["SELECT"],
        "enforcement_stage_lookup": ["SELECT"],
        "enforcement_tier_lookup": ["SELECT"],
    }
    for public_role in ("anon", "authenticated"):
        surface = role(data, public_role)
        assert surface["exists"] is True
        # judgment_priority_of is the (invoker) helper v_priority_pipeline calls.
        expected = SPEC_PUBLIC_RPCS | ({"judgment_priority_of"} if public_role != "anon" else set())
        assert functions(data, public_role, "public") == expected
        assert all(
            f["definer"]
            for f in surface["functions"]
            if f["schema"] == "public" and f["name"] != "judgment_priority_of"
        )
        # Nobody writes a table directly.
        assert all(r["privileges"] == ["SELECT"] for r in surface["relations"])
    # anon: beyond public, only the auth.* helpers every PostgREST role gets, and only the
    # lookups may be read.
    anon = role(data, "anon")
    assert {f["signature"] for f in anon["functions"] if f["schema"] != "public"} == {
        "auth.jwt()",
        "auth.role()",
        "auth.uid()",
    }
    assert {r["name"]: r["privileges"] for r in anon["relations"]} == lookups
    # A signed-in user also reads the enforcement tables and views, narrowed to the tenants
    # it is a member of by the policies, which call the tenancy helpers.
    signed_in = role(data, "authenticated")
    # ... and the on-call console's functions (schema console, not exposed by PostgREST),
    # which the console calls as the signed-in user; each keeps to the caller's tenants.
    assert {f["schema"] for f in signed_in["functions"]} == {
        "public",
        "auth",
        "tenancy",
        "console",
    }
    assert all(f["definer"] for f in signed_in["functions"] if f["schema"] == "console")
    readable = {r["name"] for r in signed_in["relations"]}
    assert set(lookups) | {"enforcement_cases", "plaintiffs", "v_priority_pipeline"} <= readable
    # The fleet's and the service's own surface is there too.
    assert "dead_letter_job" in functions(data, "dragonfly_worker", "dragonfly")
    assert "replay_dead_letter" in functions(data, "service_role", "dragonfly")
    assert "queue_job" in functions(data, "enforcement_operator", "public")
    operator_schemas = {f["schema"] for f in role(data, "enforcement_operator")["functions"]}
    assert "enrichment" not in operator_schemas
    service = {r["name"]: r for r in role(data, "service_role")["relations"]}
    assert service["enforcement_cases"]["privileges"] == ["SELECT", "INSERT", "UPDATE", "DELETE"]
    assert service["enforcement_cases"]["rls"] is True
    assert service["v_enforcement_overview"]["type"] == "view"


def test_the_policy_per_kind_and_the_rate_limits_are_the_registrys(session_db_url: str) -> None:
    data = as_json(session_db_url)
    assert [k["kind"] for k in data["kinds"]] == ["case_copilot", "enforce", "enrich", "outreach"]
    enrich = kind(data, "enrich")
    assert (enrich["shape"], enrich["target"]) == (["bundle", "case_id"], "case_id")
    assert (enrich["max_payload_bytes"], enrich["max_depth"]) == (262144, 8)
    assert [lv["level"] for lv in enrich["levels"]] == ["internal", "operator", "public"]
    assert level(data, "enrich", "public") == {
        "level": "public",
        "fields": ["case_id"],
        "max_delay_seconds": 300,
        "rate_per_minute": 60,
        "target_rate_per_hour": 4,
        "may_enqueue": True,
    }
    assert level(data, "enrich", "internal")["fields"] is None  # every field of the shape
    assert level(data, "enrich", "operator")["rate_per_minute"] == 600
    assert level(data, "outreach", "operator")["fields"] == [
        "plaintiff_id",
        "reason",
        "campaign",
        "channel",
    ]

    text = report(session_db_url)
    assert text.returncode == 0, text.stderr
    enqueue = section(text.stdout, "Who may enqueue each kind (a level not listed may not)")
    assert enqueue[0] == ["KIND", "LEVEL", "FIELDS", "MAX_DELAY"]
    assert ["enrich", "public", "case_id", "300s"] in enqueue
    assert ["enforce", "public", "case_id", "300s"] in enqueue
    assert ["enrich", "internal", "*", "(every", "field)", "86400s"] in enqueue
    rates = section(text.stdout, "Rate limits (new jobs; a repeated key is free)")
    assert ["enrich", "public", "60", "4", "(per", "case_id)"] in rates
    assert ["enrich", "internal", "-", "-"] in rates
    kinds = section(text.stdout, "Job kinds: shape and limits")
    assert ["enrich", "yes", "262144", "8", "case_id", "bundle,", "case_id"] in kinds
    rpcs = section(text.stdout, "Functions each role may execute (every schema it has USAGE on)")
    anon = [row[1:] for row in rpcs[1:] if row[0] == "anon"]
    assert [r[1].split("(")[0] for r in anon if r[1].startswith("public.")] == [
        "public.log_call_outcome",
        "public.queue_job",
        "public.request_case_copilot",
    ]
    assert {r[0] for r in anon if r[1].startswith("public.")} == {"owner"}


def test_the_report_follows_grants_and_policy_rows_as_they_are(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("grant execute on function public.judgment_priority_of(text) to anon")
        conn.execute("grant insert on public.plaintiffs to authenticated")
        conn.execute("select dragonfly.register_job_kind('probe', 'A kind without a shape.')")
        conn.execute(
            "insert into dragonfly.job_kind_policies (kind, level) values ('probe', 'public')"
        )
    data = as_json(fresh_db_url, "--role", "anon", "--role", "authenticated")
    assert [r["role"] for r in data["roles"]] == ["anon", "authenticated"]
    assert functions(data, "anon", "public") == SPEC_PUBLIC_RPCS | {"judgment_priority_of"}
    assert functions(data, "authenticated", "public") == SPEC_PUBLIC_RPCS | {"judgment_priority_of"}
    relations = {r["name"]: r for r in role(data, "authenticated")["relations"]}
    assert relations["plaintiffs"]["privileges"] == ["SELECT", "INSERT"]
    probe = kind(data, "probe")
    assert (probe["shape"], probe["target"]) == (None, None)
    assert [(lv["level"], lv["may_enqueue"]) for lv in probe["levels"]] == [
        ("internal", True),
        ("operator", True),
        ("public", False),  # queue_job refuses public callers of a kind without a shape
    ]
    text = report(fresh_db_url, "--kind", "probe", "--role", "anon")
    assert text.returncode == 0, text.stderr
    enqueue = section(text.stdout, "Who may enqueue each kind (a level not listed may not)")
    assert enqueue[1:] == [
        ["probe", "internal", "*", "(any", "object)", "86400s"],
        ["probe", "operator", "*", "(any", "object)", "86400s"],
        ["probe", "public", "(refused:", "the", "kind", "has", "no", "payload", "shape)", "86400s"],
    ]
    assert [row[0] for row in section(text.stdout, "Job kinds: shape and limits")[1:]] == ["probe"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--role", "postgres"), "argument --role: invalid choice: 'postgres'"),
        (("--kind", "Enrich!"), "argument --kind: job kind must be a lowercase letter"),
        (("--kind", "nosuchkind"), "no job kind nosuchkind in dragonfly.job_kinds"),
        (("--jsn",), "unrecognized arguments: --jsn"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    session_db_url: str, args: tuple[str, ...], expected: str
) -> None:
    result = report(session_db_url, *args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert result.stdout == ""


def test_no_report_subcommand_names_the_choices(session_db_url: str) -> None:
    result = run_cli("security", env={"DATABASE_URL": session_db_url})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dragonfly security: error: missing COMMAND: choose one of report"
    ]


def test_an_unmigrated_database_is_one_line_and_exit_1(empty_db_url: str) -> None:
    result = report(empty_db_url)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "run `dragonfly db migrate` first" in lines[0]
