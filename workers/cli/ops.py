"""On-call commands: ``dragonfly queues``, ``dragonfly dlq ...``, ``dragonfly enqueue``."""

from __future__ import annotations

import argparse
import getpass
import json
import math
import re
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from workers.cli.argtypes import positive_int, uuid
from workers.cli.common import CommandError, open_connection, print_table
from workers.job_kinds import KINDS
from workers.ops import deadletters
from workers.ops.deadletters import DeadLetterFilter
from workers.ops.enqueue import (
    QueueJobMissing,
    build_envelope,
    enqueue,
    enqueue_many,
    parse_jobs_file,
)
from workers.ops.queues import queue_stats

_RELATIVE = re.compile(r"^(?P<n>\d+)\s*(?P<unit>s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def when(text: str) -> datetime:
    """``--since``/``--until``: ISO 8601 (UTC unless it says) or an age like 30m, 2h, 7d."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
        return datetime.now(UTC) - delta
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO time (2026-11-27T08:00) or an age (30m, 2h, 7d), got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def default_operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", help="only this queue")
    p.add_argument("--kind", help="only this job kind")
    p.add_argument("--error", metavar="TEXT", help="last error contains TEXT (case-insensitive)")
    p.add_argument("--since", type=when, help="dead at or after (ISO time, or age: 30m, 2h, 7d)")
    p.add_argument("--until", type=when, help="dead before (ISO time, or age: 30m, 2h, 7d)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "queues", help="per queue: depth, in flight, oldest message age, dead letters"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_queues)

    dlq = subparsers.add_parser("dlq", help="dead letters: list, show, replay, purge")
    commands = dlq.add_subparsers(dest="dlq_command", required=True)

    p = commands.add_parser("list", help="list dead letters (open ones unless --status)")
    _add_filters(p)
    p.add_argument(
        "--status",
        choices=("dead", "replayed", "purged", "all"),
        default="dead",
        help="which dead letters (default: dead, i.e. open)",
    )
    p.add_argument("--limit", type=positive_int, default=100, help="at most N rows (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=cmd_dlq_list)

    p = commands.add_parser("show", help="everything about one dead letter")
    p.add_argument("id", type=positive_int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_dlq_show)

    for name, verb in (("replay", "re-enqueue"), ("purge", "mark purged")):
        p = commands.add_parser(
            name,
            help=f"{verb} open dead letters, by id or by filter",
            description=f"{verb.capitalize()} the open dead letters named by ID, matching the"
            " filters, or (--all) every one. Records who did it and when.",
        )
        p.add_argument("ids", nargs="*", type=positive_int, metavar="ID")
        _add_filters(p)
        p.add_argument("--all", action="store_true", help="every open dead letter")
        p.add_argument("--by", default=None, help="who (default: USER@HOST)")
        if name == "purge":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
            p.set_defaults(func=cmd_dlq_purge)
        else:
            p.add_argument("--dry-run", action="store_true", help="list what would be replayed")
            p.set_defaults(func=cmd_dlq_replay)

    p = subparsers.add_parser(
        "enqueue",
        help="enqueue a job through queue_job(), or a file of them through queue_jobs()",
        description=(
            "Enqueue a job through queue_job(); an already-enqueued KEY is not sent again. With"
            " --file, every line of a JSON Lines file is a job of KIND"
            ' ({"idempotency_key": ..., "payload": {...}}, optionally "delay_seconds",'
            ' "requested_by" and "tenant"), sent through queue_jobs(). A file with a line'
            " that is not such an object is refused whole (one line of error per bad line,"
            " exit 2, nothing sent); jobs the database refuses are reported one per line"
            " (exit 1) and the others are enqueued."
        ),
    )
    p.add_argument(
        "kind", metavar="KIND", help=f"a kind of dragonfly.job_kinds: {', '.join(KINDS)}, ..."
    )
    p.add_argument("--payload", metavar="JSON", help="the job payload (an object)")
    p.add_argument("--key", metavar="K", help="idempotency key")
    p.add_argument("--delay", type=positive_int, metavar="SECONDS", help="deliver later")
    p.add_argument(
        "--file", metavar="PATH", help="a JSON Lines file of jobs of KIND ('-': standard input)"
    )
    p.add_argument("--by", default=None, help="requested_by (default: USER@HOST)")
    p.add_argument(
        "--tenant",
        type=uuid,
        metavar="UUID",
        help="the job's tenant (its rows' tenant; for a job without rows, where it acts)",
    )
    p.set_defaults(func=cmd_enqueue)


# -- formatting ------------------------------------------------------------------


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _due(at: datetime | None, now: datetime) -> str:
    """When a deferred message becomes due, relative to now: ``in 8m36s``."""
    if at is None:
        return "-"
    seconds = (at - now).total_seconds()
    return f"in {_age(math.ceil(seconds))}" if seconds > 0 else "now"


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _db_error(exc: psycopg.Error) -> CommandError:
    message = (exc.diag.message_primary if exc.diag else None) or str(exc)
    code = 2 if (exc.sqlstate or "").startswith("22") else 1
    return CommandError(" ".join(message.split()), exit_code=code)


# -- queues ----------------------------------------------------------------------


def cmd_queues(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        stats = queue_stats(conn)
    if args.json:
        print(json.dumps([s.as_dict() for s in stats], indent=2))
        return 0
    now = datetime.now(UTC)
    print_table(
        [
            "QUEUE",
            "DEPTH",
            "VISIBLE",
            "IN_FLIGHT",
            "DEFERRED",
            "NEXT_DUE",
            "OLDEST",
            "DEAD_LETTERS",
            "SENT",
        ],
        [
            [
                s.queue,
                f"~{s.depth}" if s.depth_estimated else str(s.depth),
                f"~{s.visible}" if s.depth_estimated else str(s.visible),
                str(s.in_flight),
                str(s.deferred),
                _due(s.next_due_at, now),
                _age(s.oldest_age_sec),
                str(s.dead_letters),
                str(s.total_messages),
            ]
            for s in stats
        ],
    )
    return 0


# -- dlq -------------------------------------------------------------------------


def _filter(args: argparse.Namespace, status: str | None = "dead") -> DeadLetterFilter:
    return DeadLetterFilter(
        queue=args.queue,
        kind=args.kind,
        error=args.error,
        since=args.since,
        until=args.until,
        status=status,
        ids=tuple(getattr(args, "ids", ()) or ()),
    )


def cmd_dlq_list(args: argparse.Namespace) -> int:
    where = _filter(args, None if args.status == "all" else args.status)
    with open_connection() as conn:
        rows = deadletters.find(conn, where, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(_jsonable(row), default=str))
        return 0
    if not rows:
        print("no dead letters match")
        return 0
    print_table(
        ["ID", "QUEUE", "KIND", "KEY", "ATTEMPTS", "REASON", "DEAD_AT", "STATUS", "LAST_ERROR"],
        [
            [
                str(r["id"]),
                r["queue"],
                r["kind"] or "-",
                _one_line(r["idempotency_key"] or "-", 32),
                str(r["attempts"]),
                r["reason"],
                _time(r["dead_at"]),
                r["status"],
                _one_line(r["last_error"], 60),
            ]
            for r in rows
        ],
    )
    if len(rows) == args.limit:
        print(f"(first {args.limit}; raise --limit or narrow the filters for more)")
    return 0


def cmd_dlq_show(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        row = deadletters.get(conn, args.id)
    if row is None:
        raise CommandError(f"dead letter {args.id} does not exist")
    if args.json:
        print(json.dumps(_jsonable(row), indent=2, default=str))
        return 0
    fields = [
        "id",
        "queue",
        "msg_id",
        "kind",
        "idempotency_key",
        "attempts",
        "reason",
        "status",
        "enqueued_at",
        "dead_at",
        "resolved_at",
        "resolved_by",
        "replay_msg_id",
    ]
    for name in fields:
        value = row[name]
        shown = _time(value) if isinstance(value, datetime) else ("-" if value is None else value)
        print(f"{name + ':':<17}{shown}")
    if row["truncated_from_bytes"] is not None:
        print(
            f"{'truncated:':<17}yes: the message was {row['truncated_from_bytes']} bytes, over the"
            " dead-letter size limit; a stand-in is kept and replay is refused"
        )
    print(f"{'last_error:':<17}{row['last_error']}")
    print("message:")
    print(json.dumps(row["message"], indent=2, sort_keys=True))
    if row["headers"] is not None:
        print("headers:")
        print(json.dumps(row["headers"], indent=2, sort_keys=True))
    if row["traceback"]:
        print("traceback:")
        print(row["traceback"].rstrip())
    return 0


def _selection(
    conn: psycopg.Connection[Any], args: argparse.Namespace, verb: str
) -> list[dict[str, Any]]:
    where = _filter(args)
    if not where.narrows and not args.all:
        raise CommandError(
            f"name the dead letters to {verb}: IDs, a filter"
            " (--queue, --kind, --error, --since, --until) or --all",
            exit_code=2,
        )
    rows = deadletters.find(conn, where, limit=None)
    found = {r["id"] for r in rows}
    for missing in sorted(set(where.ids) - found):
        other = deadletters.get(conn, missing)
        if other is None:
            print(f"dead letter {missing} does not exist", file=sys.stderr)
        elif other["status"] != "dead":
            print(f"dead letter {missing} is already {other['status']}", file=sys.stderr)
        else:
            print(f"dead letter {missing} does not match the filters", file=sys.stderr)
    return rows


def _nothing_selected(missing: int) -> int:
    """The exit code when nothing was selected; one message, never two.

    Named ids that were not selected have had their reason printed already.
    """
    if not missing:
        print("no open dead letters match")
    return 1 if missing else 0


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    by = args.by or default_operator()
    failures = 0
    with open_connection() as conn:
        rows = _selection(conn, args, "replay")
        failures += len(set(args.ids) - {r["id"] for r in rows})
        if not rows:
            return _nothing_selected(failures)
        for row in rows:
            label = f"dead letter {row['id']} ({row['queue']}/{row['kind'] or '?'}"
            label += f" key={row['idempotency_key'] or '?'})"
            if args.dry_run:
                if row["truncated_from_bytes"] is not None:
                    print(f"would not replay {label}: truncated (only a stand-in was kept)")
                else:
                    print(f"would replay {label}")
                continue
            try:
                msg_id = deadletters.replay(conn, row["id"], by)
            except psycopg.Error as exc:
                failures += 1
                print(f"{label}: not replayed: {_db_error(exc)}", file=sys.stderr)
                continue
            print(f"replayed {label} as message {msg_id} on {row['queue']}")
    return 1 if failures else 0


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_dlq_purge(args: argparse.Namespace) -> int:
    by = args.by or default_operator()
    with open_connection() as conn:
        rows = _selection(conn, args, "purge")
        missing = len(set(args.ids) - {r["id"] for r in rows})
        if not rows:
            return _nothing_selected(missing)
        queues = ", ".join(sorted({r["queue"] for r in rows}))
        question = f"purge {len(rows)} dead letter(s) from {queues}?"
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError(
                    f"refusing to {question[:-1]} without confirmation:"
                    " stdin is not a terminal; pass --yes",
                    exit_code=2,
                )
            if not _confirm(question.capitalize()):
                print("not purged")
                return 1
        purged = deadletters.purge(conn, [r["id"] for r in rows], by)
    print(f"purged {len(purged)} dead letter(s) by {by}")
    return 1 if missing else 0


# -- enqueue ---------------------------------------------------------------------


def cmd_enqueue(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _enqueue_file(args)
    if args.payload is None or args.key is None:
        raise CommandError("enqueue needs --key and --payload, or --file", exit_code=2)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--payload is not valid JSON: {exc}", exit_code=2) from None
    if not isinstance(payload, dict):
        raise CommandError(
            f"--payload must be a JSON object, got {type(payload).__name__}", exit_code=2
        )
    if not args.key.strip():
        raise CommandError("--key must not be blank", exit_code=2)
    envelope = build_envelope(
        args.kind,
        args.key,
        payload,
        delay_seconds=args.delay,
        requested_by=args.by or default_operator(),
        tenant=str(args.tenant) if args.tenant is not None else None,
    )
    with open_connection() as conn:
        try:
            msg_id = enqueue(conn, envelope)
        except QueueJobMissing as exc:
            raise CommandError(f"{exc}; run `dragonfly db migrate`") from None
        except psycopg.Error as exc:
            raise _db_error(exc) from None
    print(f"enqueued {args.kind} key={args.key} as message {msg_id}")
    return 0


def _enqueue_file(args: argparse.Namespace) -> int:
    if (
        args.payload is not None
        or args.key is not None
        or args.delay is not None
        or args.tenant is not None
    ):
        raise CommandError(
            "--file takes the jobs' keys, payloads, delays and tenants from the file;"
            " drop --key, --payload, --delay and --tenant",
            exit_code=2,
        )
    name = "<stdin>" if args.file == "-" else args.file
    try:
        if args.file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(args.file, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {name}: {exc}", exit_code=2) from None
    numbers, envelopes, bad = parse_jobs_file(
        lines, args.kind, requested_by=args.by or default_operator()
    )
    if bad:
        for line in bad:
            print(f"dragonfly: {name}:{line.line}: {line.reason}", file=sys.stderr)
        raise CommandError(f"{name}: {len(bad)} bad line(s); nothing was enqueued", exit_code=2)
    with open_connection() as conn:
        try:
            outcomes = enqueue_many(conn, envelopes)
        except psycopg.errors.UndefinedFunction:
            raise CommandError(
                "public.queue_jobs(jsonb) does not exist in this database;"
                " run `dragonfly db migrate`"
            ) from None
        except psycopg.Error as exc:
            raise _db_error(exc) from None
    refused = 0
    for number, outcome in zip(numbers, outcomes, strict=True):
        if outcome.refused:
            refused += 1
            message = " ".join((outcome.message or "").split())
            print(f"dragonfly: {name}:{number}: {outcome.sqlstate} {message}", file=sys.stderr)
    taken = len(outcomes) - refused
    new = sum(1 for o in outcomes if o.sent)
    print(
        f"enqueued {taken} of {len(outcomes)} {args.kind} jobs from {name}"
        f" ({new} new, {taken - new} enqueued before)"
    )
    return 1 if refused else 0
