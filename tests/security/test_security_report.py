"""``dragonfly security report`` against a migrated database: the public surface is the
spec's (anon and authenticated may execute exactly queue_job, request_case_copilot and
log_call_outcome in public, and authenticated, as which signed-in operators arrive, also the
eight enforcement RPCs, whose tenant check decides; neither writes a table), the policy
table is the registry's, the report follows grants and policy rows as they change, and bad
arguments are one line."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.harness import run_cli
from tests.sql.enforcement_seed import ENFORCEMENT_RPCS

Conn = psycopg.Connection[Any]

SPEC_PUBLIC_RPCS = {"queue_job", "request_case_copilot", "log_call_outcome"}
# A signed-in user may also run the eight enforcement RPCs (inside, the tenant decides:
# tests/security/test_rpc_tenancy.py) and what the views it reads call with its rights: the
# pipeline's priority order (migration 20261203110200).
MEMBER_FUNCTIONS = SPEC_PUBLIC_RPCS | set(ENFORCEMENT_RPCS) | {"judgment_priority_of"}
# The tenant helpers every tenant policy calls with the caller's rights (schema tenancy is not
# exposed by PostgREST; migration 20261203090000).
TENANCY_HELPERS = {
    "tenancy.acting_tenant()",
    "tenancy.caller_tenants(p_need text)",
    "tenancy.caller_user_id()",
    "tenancy.default_tenant_id()",
    "tenancy.may(p_need text, p_tenant uuid)",
    "tenancy.may_on_case(p_need text, p_case_id uuid)",
    # Not a policy's: v_enforcement_overview asks it, with the caller's rights, whether the
    # totals may stand for the caller's rows (migration 20261204100100).
    "tenancy.overview_totals_trusted()",
}
LOOKUPS = {
    "enforcement_event_kind_lookup": ["SELECT"],
    "enforcement_stage_lookup": ["SELECT"],
    "enforcement_tier_lookup": ["SELECT"],
}
# What a signed-in member reads, row-level security deciding the rows (their tenants).
MEMBER_READS = {
    name: ["SELECT"]
    for name in (
        "enforcement_actions",
        "enforcement_cases",
        "enforcement_documents",
        "enforcement_events",
        "enforcement_history",
        "enforcement_overview_rollup",
        "enforcement_overview_rollup_deltas",
        "enforcement_overview_days",
        "enforcement_overview_days_deltas",
        "judgments",
        "outreach_campaigns",
        "plaintiff_tasks",
        "plaintiffs",
        "tenant_members",
        "tenants",
        "v_collectability_snapshot",
        "v_enforcement_overview",
        "v_enforcement_recent",
        "v_enforcement_timeline",
        "v_priority_pipeline",
    )
}


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
    auth_helpers = {"auth.jwt()", "auth.role()", "auth.uid()"}
    for public_role, rpcs, helpers, reads in (
        ("anon", SPEC_PUBLIC_RPCS, auth_helpers, LOOKUPS),
        ("authenticated", MEMBER_FUNCTIONS, auth_helpers | TENANCY_HELPERS, LOOKUPS | MEMBER_READS),
    ):
        surface = role(data, public_role)
        assert surface["exists"] is True
        assert functions(data, public_role, "public") == rpcs
        # Beyond public, only the auth.* helpers every PostgREST role gets and, for a
        # signed-in user, the tenant helpers its policies call (anon meets no such policy).
        others = {
            f["signature"] for f in surface["functions"] if f["schema"] not in ("public", "console")
        }
        assert others == helpers
        # The on-call console's functions (schema console, not exposed by PostgREST) run as
        # their owner for a signed-in user, each keeping to the caller's tenants.
        console = [f for f in surface["functions"] if f["schema"] == "console"]
        assert bool(console) == (public_role == "authenticated")
        assert all(f["definer"] for f in console)
        # The RPCs run as their owner; the one other function is a pure conversion.
        assert {
            f["name"] for f in surface["functions"] if f["schema"] == "public" and not f["definer"]
        } <= {"judgment_priority_of"}
        # No write anywhere; the lookups may be read, and a signed-in member reads their
        # tenants' rows.
        assert {r["name"]: r["privileges"] for r in surface["relations"]} == reads
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
    assert functions(data, "authenticated", "public") == MEMBER_FUNCTIONS
    relations = {r["name"]: r for r in role(data, "authenticated")["relations"]}
    assert sorted(relations["plaintiffs"]["privileges"]) == ["INSERT", "SELECT"]
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
