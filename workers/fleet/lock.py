"""One ``dragonfly up`` per home and database: a lock file held for the fleet's life.

The lock is an ``flock`` on a file under ``DRAGONFLY_HOME``, taken without waiting
when the fleet starts and held until it exits: by ``up`` and, through the
inherited descriptor, by every child it starts, so a fleet whose supervisor was
killed counts until its last process has stopped. The kernel drops the lock when
the last holder dies however it dies, so a crashed fleet never leaves a stale
lock (the file stays, the lock does not). The file holds ``up``'s pid.

Which fleets are "the same":
- embedded default (no ``DATABASE_URL``): one fleet per home, ``fleet.lock``;
- ``DATABASE_URL`` set: one fleet per home *and database* (``fleet-<digest>.lock``,
  the digest of host:port/dbname). Hosts have homes of their own, so several
  ``up`` on several hosts against one database (scaling out) are unaffected; on
  one host, ``--scale`` adds processes, and a second fleet needs its own home.

``dragonfly db stop`` reads the embedded lock to refuse stopping a server that a
running fleet uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from workers.db.connect import describe_target
from workers.settings import ConfigError, Settings

EMBEDDED_LOCK = "fleet.lock"


class FleetRunning(Exception):
    """Another fleet holds the lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        if not pid:
            owner = "another process"
        elif _alive(pid):
            owner = f"pid {pid}"
        else:  # the supervisor died; the children it started hold the lock until they exit
            owner = f"the processes of pid {pid}, which are still stopping"
        super().__init__(f"a fleet is already running in this home ({owner}, lock {path})")
        self.path = path
        self.pid = pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(settings: Settings, database_url: str | None = None) -> Path:
    """The lock file of a fleet on the embedded server, or on ``database_url``."""
    home = settings.home.resolve()
    if not database_url:
        return home / EMBEDDED_LOCK
    digest = hashlib.sha256(describe_target(database_url).encode()).hexdigest()[:12]
    return home / f"fleet-{digest}.lock"


def _owner(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the fleet lock {path} (DRAGONFLY_HOME): {exc.strerror}"
        ) from None


@dataclass
class FleetLock:
    """A held lock; ``release`` (or process exit) lets the next fleet start."""

    path: Path
    fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def acquire(path: Path) -> FleetLock:
    """Take the lock without waiting; FleetRunning when another fleet holds it."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _owner(fd)
        os.close(fd)
        raise FleetRunning(path, pid) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return FleetLock(path, fd)


def holder(path: Path) -> int | None:
    """The pid of the fleet holding the lock at ``path`` (0 if unknown), or None if free."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _owner(fd) or 0
        return None
    finally:
        os.close(fd)
