"""``dragonfly listen`` (the alert listener) and ``dragonfly alerts`` (on-call tools)."""

from __future__ import annotations

import argparse
import json
import os
import signal
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from types import FrameType
from typing import Any
from uuid import UUID

import psycopg
from pydantic import ValidationError

from workers.alerts import store
from workers.alerts.listener import Listener, ListenerConfig
from workers.alerts.metrics import AlertMetrics
from workers.alerts.models import DELIVERY_STATUSES, SINK_NAMES, Rule
from workers.alerts.sinks import build_sinks
from workers.alerts.sinks.email import split_addresses
from workers.cli.argtypes import positive_int, uuid
from workers.cli.common import CommandError, open_connection, settings_and_url
from workers.db.connect import redact
from workers.job_kinds import KINDS
from workers.log import configure_logging, get_logger
from workers.observability import process as observability


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "listen",
        help="run the alert listener (enforcement events -> Slack, email, queue_job)",
        description="LISTEN on enforcement_events_channel, route each event by the alert"
        " rules and deliver it; catches up on start and after every reconnect. Several"
        " listeners may run at once (docs/alerts.md).",
    )
    p.add_argument(
        "--once", action="store_true", help="catch up and deliver what is due, then exit"
    )
    p.add_argument("--name", help="listener name recorded on deliveries (default host:pid)")
    p.set_defaults(func=cmd_listen)

    alerts = subparsers.add_parser("alerts", help="alert deliveries and routing rules")
    commands = alerts.add_subparsers(dest="alerts_command", required=True)

    p = commands.add_parser("list", help="list deliveries, newest first")
    p.add_argument("--status", choices=DELIVERY_STATUSES, help="only deliveries in this status")
    p.add_argument("--sink", choices=SINK_NAMES, help="only deliveries to this sink")
    p.add_argument("--event", type=uuid, help="only deliveries of this event id")
    p.add_argument("--case", type=uuid, help="only deliveries of this enforcement case id")
    p.add_argument("--tenant", metavar="TENANT", help="only deliveries of this tenant (slug or id)")
    p.add_argument("--limit", type=positive_int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("stats", help="number of deliveries per status")
    p.set_defaults(func=cmd_stats)

    p = commands.add_parser(
        "retry",
        help="retry dead (or failed) deliveries now",
        description="A dead delivery goes back to pending with a fresh attempt count; a failed"
        " one waiting for its backoff becomes due now. Running listeners are woken.",
    )
    p.add_argument("ids", nargs="*", type=positive_int, metavar="ID", help="delivery ids")
    p.add_argument("--all-dead", action="store_true", help="every dead delivery")
    p.set_defaults(func=cmd_retry)

    rules = commands.add_parser("rules", help="list and change the routing rules")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True)

    p = rule_commands.add_parser("list", help="every rule")
    p.add_argument(
        "--tenant",
        metavar="TENANT",
        help="only the rules that route this tenant's events (its own and those of every tenant)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_rules_list)

    p = rule_commands.add_parser(
        "add",
        help="add a rule (or replace one with --replace)",
        description="An enabled rule sends every event matching all its conditions to each of"
        " its sinks. Omitted conditions match anything.",
    )
    p.add_argument("name")
    p.add_argument("--sinks", required=True, metavar="SINK,...", help="slack, email, queue")
    p.add_argument("--kinds", metavar="KIND,...", help="event kinds (default: any)")
    p.add_argument("--tiers", metavar="TIER,...", help="effective tiers (default: any)")
    p.add_argument("--min-amount", help="threshold on the alert amount (default: none)")
    p.add_argument("--job-kind", help=f"queue sink: job kind ({', '.join(KINDS)}, ...)")
    p.add_argument("--job-payload", metavar="JSON", help="queue sink: extra payload fields")
    p.add_argument("--email-to", metavar="ADDR,...", help="email sink: recipients")
    p.add_argument(
        "--tenant",
        metavar="TENANT",
        help="only this tenant's events (slug or id; default: every tenant's)",
    )
    p.add_argument("--description")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.add_argument("--replace", action="store_true", help="overwrite a rule of the same name")
    p.set_defaults(func=cmd_rules_add)

    for name, func, text in (
        ("enable", cmd_rules_enable, "enable a rule"),
        ("disable", cmd_rules_disable, "disable a rule (kept, matches nothing)"),
        ("remove", cmd_rules_remove, "delete a rule (its deliveries stay)"),
    ):
        p = rule_commands.add_parser(name, help=text)
        p.add_argument("name")
        p.set_defaults(func=func)


# -- listen --------------------------------------------------------------------


def _install_stop_handlers(on_first: Callable[[], None]) -> None:
    count = 0

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        get_logger("workers.cli").info("signal_received", signal=signal.Signals(signum).name)
        if count == 1:
            on_first()
        else:
            os._exit(1)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_listen(args: argparse.Namespace) -> int:
    settings, url = settings_and_url()
    configure_logging(settings, process="listener")
    log = get_logger("workers.alerts")
    config = ListenerConfig.from_settings(settings, name=args.name)
    sinks = build_sinks(settings)
    missing = [name for name in SINK_NAMES if name not in sinks]
    if missing:
        log.warning(
            "listener_sinks_unconfigured",
            sinks=missing,
            detail="their deliveries stay pending until a listener that has them runs",
        )
    if args.once:
        listener = Listener(url, sinks, config)
        try:
            result = listener.run_once()
        except psycopg.Error as exc:
            raise CommandError(" ".join(str(exc).split())) from None
        finally:
            listener.close()
        print(
            f"routed {result.routed} event(s) into {result.created} delivery(ies);"
            f" delivered {result.delivered}, failed {result.failed}, dead {result.dead}"
        )
        return 0

    obs = observability.start(settings, process="listener", database_url=url)
    listener = Listener(
        url, sinks, config, metrics=AlertMetrics(obs.registry), readiness=obs.readiness
    )
    _install_stop_handlers(listener.stop)
    log.info("listener_starting", database=redact(url), listener=config.name)
    try:
        listener.loop()
    finally:
        listener.close()
        obs.close()
    return 0


# -- alerts --------------------------------------------------------------------


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def _tenant(conn: psycopg.Connection[Any], ref: str) -> tuple[UUID, str]:
    """The (id, slug) of ``--tenant``; a tenant that does not exist is one line, exit 2."""
    found = store.find_tenant(conn, ref)
    if found is None:
        raise CommandError(f"--tenant: no tenant {ref!r} (give its slug or id)", exit_code=2)
    return found


def cmd_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CommandError("--limit must be at least 1", exit_code=2)
    with open_connection() as conn:
        tenant_id = _tenant(conn, args.tenant)[0] if args.tenant is not None else None
        rows = store.list_deliveries(
            conn,
            status=args.status,
            event_id=args.event,
            case_id=args.case,
            sink=args.sink,
            tenant_id=tenant_id,
            limit=args.limit,
        )
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str, sort_keys=True))
        return 0
    if not rows:
        print("no deliveries")
        return 0
    for row in rows:
        when = {
            "delivered": f"delivered {_when(row['delivered_at'])} by {row['delivered_by']}",
            "dead": f"dead since {_when(row['dead_at'])}",
            "failed": f"next attempt {_when(row['next_attempt_at'])}",
            "pending": f"due {_when(row['next_attempt_at'])}",
        }[row["status"]]
        tenant = row["tenant_slug"] or row["tenant_id"] or "-"
        print(
            f"{row['id']:>8}  {row['status']:<9} {row['sink']:<5}  {row['event_kind']}"
            f"  case {row['case_number'] or row['case_id']}  tenant {tenant}  rule {row['rule']}"
            f"  attempts {row['attempts']}  {when}"
        )
        print(f"{'':>10}event {row['event_id']}")
        if row["last_error"] and row["status"] != "delivered":
            print(f"{'':>10}last error: {row['last_error']}")
    return 0


def cmd_stats(_args: argparse.Namespace) -> int:
    with open_connection() as conn:
        counts = store.count_deliveries(conn)
    for status in DELIVERY_STATUSES:
        print(f"{status:<10} {counts.get(status, 0)}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all_dead):
        raise CommandError("give delivery ids or --all-dead (not both)", exit_code=2)
    with open_connection() as conn, conn.transaction():
        retried = store.retry_deliveries(conn, ids=args.ids or None, all_dead=args.all_dead)
    for delivery_id in retried:
        print(f"delivery {delivery_id}: queued for retry")
    skipped = sorted(set(args.ids) - set(retried))
    for delivery_id in skipped:
        print(f"delivery {delivery_id}: not dead or failed (or no such delivery); unchanged")
    if args.all_dead:
        print(f"{len(retried)} dead delivery(ies) queued for retry")
    return 1 if skipped else 0


def _split(value: str | None) -> list[str] | None:
    parts = [p.strip() for p in (value or "").split(",") if p.strip()]
    return parts or None


def cmd_rules_list(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        rules = store.load_rules(conn)
        slugs = store.tenant_slugs(conn)
        if args.tenant is not None:
            tenant_id = _tenant(conn, args.tenant)[0]
            rules = [r for r in rules if r.tenant_id in (None, tenant_id)]
    if args.json:
        for rule in rules:
            row = rule.model_dump(mode="json")
            row["tenant_slug"] = slugs.get(rule.tenant_id) if rule.tenant_id else None
            print(json.dumps(row, sort_keys=True))
        return 0
    if not rules:
        print("no rules")
        return 0
    for rule in rules:
        tenant = "any" if rule.tenant_id is None else slugs.get(rule.tenant_id, str(rule.tenant_id))
        conditions = [
            f"tenant={tenant}",
            f"kinds={','.join(rule.event_kinds)}" if rule.event_kinds else "kinds=any",
            f"tiers={','.join(rule.tiers)}" if rule.tiers else "tiers=any",
            f"min_amount={rule.min_amount}" if rule.min_amount is not None else "",
        ]
        targets = ",".join(rule.sinks)
        if rule.job_kind:
            targets += f" job_kind={rule.job_kind}"
        if rule.email_to:
            targets += f" email_to={','.join(rule.email_to)}"
        state = "enabled " if rule.enabled else "disabled"
        print(f"{rule.name}  [{state}]  {' '.join(c for c in conditions if c)}  -> {targets}")
        if rule.description:
            print(f"    {rule.description}")
    return 0


def cmd_rules_add(args: argparse.Namespace) -> int:
    try:
        min_amount = Decimal(args.min_amount) if args.min_amount is not None else None
    except InvalidOperation:
        raise CommandError(
            f"--min-amount: not a number: {args.min_amount!r}", exit_code=2
        ) from None
    try:
        job_payload = json.loads(args.job_payload) if args.job_payload else {}
    except json.JSONDecodeError as exc:
        raise CommandError(f"--job-payload: invalid JSON: {exc}", exit_code=2) from None
    tenant_id = None
    if args.tenant is not None:
        with open_connection() as conn:
            tenant_id = _tenant(conn, args.tenant)[0]
    try:
        rule = Rule(
            name=args.name,
            tenant_id=tenant_id,
            description=args.description,
            enabled=not args.disabled,
            event_kinds=_split(args.kinds),
            tiers=_split(args.tiers),
            min_amount=min_amount,
            sinks=_split(args.sinks) or [],
            job_kind=args.job_kind,
            job_payload=job_payload,
            email_to=split_addresses(args.email_to) or None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise CommandError(f"invalid rule: {where}: {first.get('msg')}", exit_code=2) from None
    with open_connection() as conn:
        try:
            with conn.transaction():
                stored = store.upsert_rule(conn, rule, replace=args.replace)
        except (psycopg.errors.CheckViolation, psycopg.errors.InvalidTextRepresentation) as exc:
            message = exc.diag.message_primary or str(exc)
            raise CommandError(f"invalid rule: {message}", exit_code=2) from None
    if not stored:
        raise CommandError(f"rule {args.name} exists; add --replace to overwrite it")
    print(f"rule {args.name} {'saved' if args.replace else 'added'}")
    return 0


def _set_enabled(name: str, enabled: bool) -> int:
    with open_connection() as conn:
        found = store.set_rule_enabled(conn, name, enabled=enabled)
    if not found:
        raise CommandError(f"no rule named {name}")
    print(f"rule {name} {'enabled' if enabled else 'disabled'}")
    return 0


def cmd_rules_enable(args: argparse.Namespace) -> int:
    return _set_enabled(args.name, True)


def cmd_rules_disable(args: argparse.Namespace) -> int:
    return _set_enabled(args.name, False)


def cmd_rules_remove(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        found = store.delete_rule(conn, args.name)
    if not found:
        raise CommandError(f"no rule named {args.name}")
    print(f"rule {args.name} removed")
    return 0
