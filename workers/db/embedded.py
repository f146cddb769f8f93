"""The embedded default database: one pgserver PostgreSQL under DRAGONFLY_HOME.

The server is started on first use and left running (``cleanup_mode=None``), so
every process of the fleet shares it; ``dragonfly db stop`` stops it. pgserver
serialises start-up with its own inter-process lock, so two processes starting
at once end up on the same postmaster.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


class EmbeddedServerError(Exception):
    """The embedded PostgreSQL could not be started."""


def data_dir(home: Path) -> Path:
    """Where the embedded cluster keeps its data."""
    return home.resolve() / "pgdata"


def embedded_url(home: Path) -> str:
    """Start (or join) the embedded server and return its connection URL."""
    pgdata = data_dir(home)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver copes.
        warnings.simplefilter("ignore")
        import pgserver

        try:
            server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        except Exception as exc:  # pgserver raises bare subprocess/OS errors
            raise EmbeddedServerError(
                f"embedded PostgreSQL under {pgdata} failed to start: {exc}"
            ) from exc
    return str(server.get_uri())


def _postmaster(pgdata: Path) -> Any:
    """pgserver's view of postmaster.pid when the server runs, else None."""
    if not (pgdata / "postmaster.pid").exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() else None


def running_url(home: Path) -> str | None:
    """The URL of the embedded server if it runs now; never starts it."""
    info = _postmaster(data_dir(home))
    return str(info.get_uri()) if info is not None else None


def stop(home: Path) -> bool:
    """Stop the embedded server if it runs; return whether it was running."""
    pgdata = data_dir(home)
    if _postmaster(pgdata) is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        user = "pgserver" if _running_as_root() else None
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
