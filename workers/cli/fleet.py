"""``dragonfly up`` (the whole fleet) and ``dragonfly scheduler``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from workers.cli.common import CommandError, settings_and_url
from workers.db.connect import connect, database_url, redact
from workers.db.migrate import MigrationError, default_migrations_dir, migrate
from workers.fleet import lock as fleet_lock
from workers.fleet import ports as ports_of_fleet
from workers.fleet import readiness
from workers.fleet.procfile import ProcessType, ProcfileError, load
from workers.fleet.supervisor import ChildSpec, Supervisor
from workers.job_kinds import RegistryMismatch, check_registry, python_kinds, registered
from workers.log import configure_logging, get_logger
from workers.observability import process as observability
from workers.observability.metrics import SchedulerMetrics
from workers.observability.process import PORT_VARIABLE
from workers.runtime.handlers import HandlerNotFound, load_job
from workers.scheduler.base import DailyAt, Every
from workers.scheduler.runs import last_run
from workers.scheduler.service import NotLeader, Scheduler, UnknownTask
from workers.scheduler.tasks import default_tasks
from workers.settings import Settings, load_settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "up",
        help="migrate, then run the whole fleet (one process per Procfile line)",
        description="Migrate the database, then run one supervised process per Procfile line,"
        " restarting crashed ones; Ctrl-C or SIGTERM stops them all.",
    )
    p.add_argument("--procfile", type=Path, help="Procfile to run (default: ./Procfile)")
    p.add_argument(
        "--only", metavar="TYPE,...", help="run only these process types (comma-separated)"
    )
    p.add_argument(
        "--scale",
        metavar="TYPE=N,...",
        default="",
        help="processes per type, e.g. enrich=2,outreach=0 (default 1 each)",
    )
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    p.set_defaults(func=cmd_up)

    p = subparsers.add_parser(
        "scheduler",
        help="run the fleet scheduler (nightly metrics refresh, retention)",
        description="Run periodic tasks; several schedulers are safe (one leads, via a lock).",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run the due tasks once and exit")
    mode.add_argument("--run", metavar="TASK", help="run TASK now, whatever its schedule, and exit")
    mode.add_argument(
        "--status", action="store_true", help="list the tasks and their last runs, and exit"
    )
    p.set_defaults(func=cmd_scheduler)


# -- signals -------------------------------------------------------------------


def _install_stop_handlers(on_first: Callable[[], None], on_second: Callable[[], None]) -> None:
    count = 0

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        get_logger("workers.cli").info("signal_received", signal=signal.Signals(signum).name)
        (on_first if count == 1 else on_second)()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# -- scheduler -------------------------------------------------------------------


def _describe_schedule(schedule: object) -> str:
    if isinstance(schedule, DailyAt):
        return f"daily at {schedule.at.strftime('%H:%M')} UTC"
    if isinstance(schedule, Every):
        return f"every {int(schedule.interval.total_seconds() // 60)} min"
    return type(schedule).__name__


def _scheduler_status(settings: Settings, url: str) -> int:
    with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
        for task in default_tasks(settings):
            record = last_run(conn, task.name)
            print(f"{task.name}: {_describe_schedule(task.schedule)}")
            if record is None:
                print("  never run")
                continue
            print(
                f"  last run {record.last_started_at.isoformat(timespec='seconds')}"
                f" by {record.ran_by}: {record.last_status} {record.last_detail or ''}".rstrip()
            )
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings, url = settings_and_url()
    if args.status:
        return _scheduler_status(settings, url)
    configure_logging(settings, process="scheduler")
    tasks = default_tasks(settings)
    if args.once or args.run:
        scheduler = Scheduler(url, tasks, connect_timeout=settings.connect_timeout)
        try:
            if args.run:
                outcomes = [scheduler.run_task(args.run)]
            else:
                tick = scheduler.run_once()
                if not tick.leader:
                    print("another scheduler holds the fleet lock; nothing run")
                outcomes = tick.outcomes
        except (NotLeader, UnknownTask) as exc:
            raise CommandError(str(exc), exit_code=1 if isinstance(exc, NotLeader) else 2) from None
        except psycopg.Error as exc:
            raise CommandError(" ".join(str(exc).split())) from None
        finally:
            scheduler.close()
        for o in outcomes:
            print(f"{o.task}: {o.status} {o.detail or ''}".rstrip())
        return 1 if any(o.status == "failed" for o in outcomes) else 0

    obs = observability.start(settings, process="scheduler", database_url=url)
    scheduler = Scheduler(
        url,
        tasks,
        connect_timeout=settings.connect_timeout,
        metrics=SchedulerMetrics(obs.registry),
    )
    _install_stop_handlers(scheduler.stop.set, lambda: os._exit(1))
    log = get_logger("workers.scheduler")
    log.info("scheduler_started", tasks=[t.name for t in tasks], database=redact(url))
    try:
        scheduler.run(settings.scheduler_tick_seconds, readiness=obs.readiness)
    finally:
        obs.close()
    log.info("scheduler_stopped")
    return 0


# -- up ------------------------------------------------------------------------


def _cli_subcommands() -> set[str]:
    from workers.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def resolve_argv(command: list[str], subcommands: set[str]) -> list[str] | None:
    """The argv to run a Procfile command, or None when it is not available here.

    ``dragonfly ...`` runs this installation's CLI with this interpreter, so the
    fleet works without an activated virtualenv; it is unavailable when the CLI
    has no such subcommand (yet). Any other command must be on PATH.
    """
    if not command:
        return None
    if command[0] == "dragonfly":
        if len(command) < 2 or command[1] not in subcommands:
            return None
        return [sys.executable, "-m", "workers.cli", *command[1:]]
    return command if shutil.which(command[0]) else None


def _parse_scale(text: str) -> dict[str, int]:
    scale: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit():
            raise CommandError(f"--scale: expected TYPE=N, got {item!r}", exit_code=2)
        scale[name.strip()] = int(count)
    return scale


def plan_children(
    types: list[ProcessType],
    *,
    only: set[str] | None,
    scale: dict[str, int],
    metrics_port: int,
    database_url: str,
    subcommands: set[str],
) -> tuple[list[ChildSpec], list[str]]:
    """The children to run and the warnings (skipped lines) to log."""
    known = {t.name for t in types}
    for name in sorted((only or set()) | set(scale)):
        if name not in known:
            raise CommandError(
                f"unknown process type {name!r}; the Procfile has {', '.join(sorted(known))}",
                exit_code=2,
            )
    specs: list[ChildSpec] = []
    skipped: list[str] = []
    for ptype in types:
        if only is not None and ptype.name not in only:
            continue
        argv = resolve_argv(ptype.argv, subcommands)
        if argv is None:
            skipped.append(f"{ptype.name}: command not available here: {ptype.command}")
            continue
        for n in range(1, scale.get(ptype.name, 1) + 1):
            port = metrics_port + len(specs) if metrics_port else 0
            env = {"DATABASE_URL": database_url, "DRAGONFLY_METRICS_PORT": str(port)}
            specs.append(ChildSpec(f"{ptype.name}.{n}", ptype.name, argv, env))
    return specs, skipped


def worker_kinds(specs: list[ChildSpec]) -> dict[str, str | None]:
    """The kinds the fleet's ``dragonfly worker KIND [--handler SPEC]`` children consume,
    each with the ``--handler`` its command names (None: the default definition)."""
    kinds: dict[str, str | None] = {}
    for spec in specs:
        argv = list(spec.argv[3:])  # after: python -m workers.cli
        if len(argv) < 2 or argv[0] != "worker":
            continue
        handler = argv[argv.index("--handler") + 1] if "--handler" in argv[:-1] else None
        kinds[argv[1]] = handler
    return kinds


def check_job_kinds(
    conn: psycopg.Connection[Any], settings: Settings, specs: list[ChildSpec]
) -> list[str]:
    """Before starting any child: every kind the fleet runs has a Python definition,
    and every Python kind and every kind run has a ``dragonfly.job_kinds`` row. One-line
    CommandError (exit 2) otherwise; returns warnings (disabled kinds run). A fleet
    of commands other than ``dragonfly`` ones uses neither queues nor schema, so it is
    not checked."""
    if not any(spec.argv[1:3] == ["-m", "workers.cli"] for spec in specs):
        return []
    running = worker_kinds(specs)
    for kind, handler in running.items():
        try:
            load_job(kind, handler or settings.handlers.get(kind))
        except HandlerNotFound as exc:
            raise CommandError(f"job kind {kind}: {exc}", exit_code=2) from None
    try:
        rows = registered(conn)
        return check_registry(rows, python=python_kinds(settings.handlers), running=list(running))
    except RegistryMismatch as exc:
        raise CommandError(str(exc), exit_code=2) from None


def _announce(specs: list[ChildSpec], settings: Settings, supervisor: Supervisor) -> None:
    """Print one line when every child answers /readyz (at once when none serves it)."""
    log = get_logger("workers.fleet")
    ports = {s.name: ports_of_fleet.child_port(s) for s in specs}
    if not all(ports.values()):
        print(
            f"fleet started: {len(specs)} process(es) ({PORT_VARIABLE}=0: readiness not watched)",
            flush=True,
        )
        return
    host = ports_of_fleet.probe_host(settings.metrics_host)
    where = f"[{host}]" if ":" in host else host
    urls = {name: f"http://{where}:{port}/readyz" for name, port in ports.items()}
    first, last = min(ports.values()), max(ports.values())
    span = f"{first}" if first == last else f"{first}-{last}"
    count = f"{len(specs)} process" + ("es" if len(specs) > 1 else "")

    def ready(seconds: float) -> None:
        log.info("fleet_ready", children=len(specs), seconds=round(seconds, 1))
        print(
            f"fleet ready: {count} in {seconds:.1f}s ({', '.join(ports)});"
            f" /readyz on {where}:{span}",
            flush=True,
        )

    readiness.watch(urls, stop=supervisor.stop_requested, on_ready=ready)


def _console_admin_token(settings: Settings, specs: list[ChildSpec]) -> None:
    """On the embedded default the children are handed its URL, so a console child would not
    know it may make its own admin token: the fleet makes one, prints it once and hands it to
    the console children (a deployment sets DRAGONFLY_CONSOLE_ADMIN_TOKEN or a JWT secret)."""
    consoles = [i for i, s in enumerate(specs) if list(s.argv[3:4]) == ["console"]]
    if not consoles or settings.database_url is not None or settings.console_admin_token:
        return
    token = secrets.token_urlsafe(24)
    for i in consoles:
        specs[i] = dataclasses.replace(
            specs[i], env={**specs[i].env, "DRAGONFLY_CONSOLE_ADMIN_TOKEN": token}
        )
    print(f"console admin token (this fleet only): {token}", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        lock = fleet_lock.acquire(fleet_lock.lock_path(settings, settings.database_url))
    except fleet_lock.FleetRunning as exc:
        raise CommandError(
            f"{exc}; stop it first, or restart it with --scale to run more processes"
        ) from None
    try:
        return _run_fleet(args, settings, database_url(settings), lock)
    finally:
        lock.release()


def _run_fleet(
    args: argparse.Namespace, settings: Settings, url: str, lock: fleet_lock.FleetLock
) -> int:
    configure_logging(settings, process="up")
    log = get_logger("workers.fleet")
    try:
        types, source = load(args.procfile)
    except ProcfileError as exc:
        raise CommandError(str(exc), exit_code=2) from None
    only = {t.strip() for t in args.only.split(",") if t.strip()} if args.only else None
    specs, skipped = plan_children(
        types,
        only=only,
        scale=_parse_scale(args.scale),
        metrics_port=settings.metrics_port,
        database_url=url,
        subcommands=_cli_subcommands(),
    )
    for reason in skipped:
        log.warning("fleet_process_skipped", reason=reason)
    _console_admin_token(settings, specs)
    if not specs:
        raise CommandError(f"nothing to run: no available process type in {source}")
    ports_of_fleet.check_free(settings.metrics_host, specs)

    with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
        if not args.no_migrate:
            directory = settings.migrations_dir or default_migrations_dir()
            try:
                applied = migrate(conn, directory, log=lambda m: log.info("migration", detail=m))
            except MigrationError as exc:
                raise CommandError(str(exc)) from None
            log.info("fleet_migrated", applied=len(applied))
        for warning in check_job_kinds(conn, settings, specs):
            log.warning("job_kind_disabled", detail=warning)

    supervisor = Supervisor(
        specs,
        stop_timeout=settings.fleet_stop_timeout,
        max_backoff=settings.fleet_restart_max_backoff,
        # The children hold the lock too: a fleet whose supervisor was killed still
        # counts while its processes drain.
        pass_fds=(lock.fd,),
    )
    _install_stop_handlers(supervisor.request_stop, supervisor.request_stop)
    log.info(
        "fleet_starting",
        procfile=source,
        database=redact(url),
        children={s.name: s.env["DRAGONFLY_METRICS_PORT"] for s in specs},
    )
    _announce(specs, settings, supervisor)
    supervisor.run()
    return 0
