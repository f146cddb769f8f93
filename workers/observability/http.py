"""The health and metrics server every fleet process runs.

- ``GET /healthz``: 200 while the process serves requests (liveness), with its pid;
- ``GET /readyz``: 200 when the process says it is ready (the consumer is
  reading, the scheduler is ticking) *and* the database answers; 503 with the
  failing check otherwise (readiness: take it out of rotation, do not kill it);
- ``GET /metrics``: prometheus-client's own WSGI exposition of the registry
  (text or OpenMetrics by content negotiation, gzip when asked).

A small threaded WSGI server from the standard library serves it on a daemon
thread; request logging is off (the access log of a probe every few seconds
is noise).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app


class Readiness:
    """The process's own readiness: set by the runtime, read by ``/readyz`` and the heartbeat.

    ``on_lost(reason)`` is called each time a ready process stops being ready for a reason
    other than stopping (the database went away): the metric of database errors counts it.
    """

    def __init__(self, on_lost: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._reason = "starting"
        self._on_lost = on_lost

    def set_ready(self, ready: bool, reason: str = "") -> None:
        with self._lock:
            lost = self._ready and not ready
            self._ready = ready
            self._reason = "" if ready else (reason or "not ready")
            shown = self._reason
        if lost and self._on_lost is not None and shown != "stopping":
            self._on_lost(shown)

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    @property
    def reason(self) -> str:
        with self._lock:
            return self._reason


DatabaseCheck = Callable[[], str | None]


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body, sort_keys=True).encode() + b"\n"
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]


def make_app(
    registry: CollectorRegistry,
    readiness: Readiness,
    database_check: DatabaseCheck | None = None,
) -> WSGIApplication:
    """The WSGI application behind the server (also usable under any WSGI server)."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "GET only"})
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok", "pid": os.getpid()})
        if path == "/readyz":
            checks: dict[str, str] = {"process": "ok" if readiness.ready else readiness.reason}
            if database_check is not None:
                checks["database"] = database_check() or "ok"
            ok = all(v == "ok" for v in checks.values())
            return _json(
                start_response,
                "200 OK" if ok else "503 Service Unavailable",
                {"status": "ready" if ok else "not ready", "checks": checks},
            )
        return _json(start_response, "404 Not Found", {"error": f"no such path {path}"})

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class HealthServer:
    """Serves an app on ``host:port`` from a daemon thread (port 0: any free port)."""

    def __init__(self, app: WSGIApplication, host: str, port: int) -> None:
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        self._server = make_server(
            host, port, app, server_class=server_class, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="health-server",
            daemon=True,
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
