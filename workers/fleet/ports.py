"""The fleet's metrics ports: free before any child starts, and where to ask for readiness."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from workers.fleet.supervisor import ChildSpec
from workers.observability.process import PORT_VARIABLE, port_in_use


def child_port(spec: ChildSpec) -> int:
    """The metrics port ``dragonfly up`` gave a child (0: none)."""
    return int(spec.env.get(PORT_VARIABLE, "0") or 0)


def check_free(host: str, specs: Sequence[ChildSpec]) -> None:
    """Bind and release every child's port; the first one taken is a ConfigError.

    Binds the way the metrics server does (SO_REUSEADDR, which ``create_server``
    sets), so a port in TIME_WAIT counts as free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for spec in specs:
        port = child_port(spec)
        if not port:
            continue
        try:
            socket.create_server((host, port), family=family).close()
        except OSError as exc:
            raise port_in_use(host, port, exc, child=spec.name) from None


def probe_host(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host
