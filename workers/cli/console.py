"""``dragonfly console``: the on-call web console (docs/console.md).

One process: a Starlette application served by uvicorn on ``DRAGONFLY_CONSOLE_HOST:
DRAGONFLY_CONSOLE_PORT`` (127.0.0.1:8700), plus the fleet's usual ``/healthz``,
``/readyz`` and ``/metrics`` on ``DRAGONFLY_METRICS_PORT`` and a heartbeat row, so
``dragonfly up`` supervises it like any other Procfile line.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import threading
import time
from typing import Any

from workers.cli.argtypes import positive_int
from workers.cli.common import CommandError, settings_and_url
from workers.console.app import ConsoleConfig, build_app, new_session_secret
from workers.console.auth import TokenVerifier
from workers.console.db import HAS_CONSOLE, ConsoleDatabase
from workers.db.connect import connect, redact
from workers.log import configure_logging, get_logger
from workers.observability import process as observability
from workers.redact import register_secrets
from workers.runtime.shutdown import SignalStop
from workers.settings import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "console",
        help="the on-call web console: queues, dead letters, alerts, cases, fleet",
        description="Serve the on-call console. Operators sign in with a Supabase access"
        " token (DRAGONFLY_CONSOLE_JWT_SECRET or DRAGONFLY_CONSOLE_JWKS_URL) or the static"
        " admin token (DRAGONFLY_CONSOLE_ADMIN_TOKEN; generated and printed on the embedded"
        " default when unset).",
    )
    p.add_argument("--host", help="address to bind (default DRAGONFLY_CONSOLE_HOST, 127.0.0.1)")
    p.add_argument("--port", type=positive_int, help="port (default DRAGONFLY_CONSOLE_PORT, 8700)")
    p.set_defaults(func=cmd_console)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a kept-alive connection waits 40 ms (delayed ACK) for every response body.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"console port {port} on {host} is not available ({exc.strerror or exc});"
            " set DRAGONFLY_CONSOLE_PORT to a free port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    settings, url = settings_and_url()
    host = args.host or settings.console_host
    port = settings.console_port if args.port is None else args.port
    if port > 65535:
        raise CommandError(f"--port must be 1 to 65535, got {port}", exit_code=2)
    admin_token = (
        settings.console_admin_token.get_secret_value() if settings.console_admin_token else None
    )
    generated = False
    if not admin_token and settings.database_url is None:
        # The embedded default is one person's machine: give them a way in.
        admin_token = secrets.token_urlsafe(24)
        generated = True
    verifier = TokenVerifier(
        jwt_secret=(
            settings.console_jwt_secret.get_secret_value() if settings.console_jwt_secret else None
        ),
        jwks_url=settings.console_jwks_url,
        audience=settings.console_jwt_audience,
        admin_token=admin_token,
    )
    if not verifier.accepts_tokens and not verifier.accepts_admin:
        raise ConfigError(
            "nobody could sign in to the console: set DRAGONFLY_CONSOLE_JWT_SECRET,"
            " DRAGONFLY_CONSOLE_JWKS_URL or DRAGONFLY_CONSOLE_ADMIN_TOKEN"
        )
    configure_logging(settings, process="console")
    stop = SignalStop()
    stop.install()
    register_secrets([admin_token])
    log = get_logger("workers.console")
    # One connection first: a database that cannot be reached is one clear line (exit 2),
    # not the pool's wait.
    with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
        row = conn.execute(HAS_CONSOLE).fetchone()
    if not row or not row[0]:
        raise CommandError("the database has no console schema; run `dragonfly db migrate` first")
    sock = _bind(host, port)
    database = ConsoleDatabase(url, connect_timeout=settings.connect_timeout)
    try:
        database.open()
        session_secret = (
            settings.console_session_secret.get_secret_value()
            if settings.console_session_secret
            else new_session_secret()
        )
        app = build_app(
            ConsoleConfig(
                database=database,
                verifier=verifier,
                session_secret=session_secret,
                session_hours=settings.console_session_hours,
            )
        )
        obs = observability.start(settings, process="console", database_url=url)
        try:
            shown_host = f"[{host}]" if ":" in host else host
            print(f"console on http://{shown_host}:{port}/", flush=True)
            if generated:
                print(
                    f"console admin token (this run only; set DRAGONFLY_CONSOLE_ADMIN_TOKEN to"
                    f" keep one): {admin_token}",
                    flush=True,
                )
            log.info("console_started", url=f"http://{shown_host}:{port}/", database=redact(url))
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    server_header=False,
                    timeout_graceful_shutdown=10,
                )
            )
            # uvicorn serves from a thread of its own, so it neither takes the signals nor
            # re-raises them at its end: the first SIGTERM/SIGINT here stops it gracefully
            # and the heartbeat row and pool are cleaned up below; a second exits at once.
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
            )
            thread.start()
            obs.readiness.set_ready(True)
            while thread.is_alive() and stop.wait(time.monotonic() + 0.5) is None:
                pass
            if stop.requested:
                log.info("shutdown_requested", signal=stop.requested)
            server.should_exit = True
            thread.join(15)
        finally:
            obs.close()
    finally:
        database.close()
        sock.close()
    log.info("console_stopped")
    sys.stdout.flush()
    return 0
