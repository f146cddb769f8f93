"""The Procfile: one process type per line, ``name: command``.

The repository's Procfile is the truth for ``dragonfly up`` (and for Heroku-
style platforms, foreman, honcho). ``#`` starts a comment line; blank lines are
ignored; names are lower-case letters, digits, ``_`` and ``-``, each once.
When no Procfile is found (an installed wheel run outside a checkout),
:data:`DEFAULT_PROCFILE` is used; a test keeps it identical to the file.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from workers.job_kinds import KINDS

DEFAULT_PROCFILE = (
    "# One line per process type: `dragonfly up` runs one supervised process for each\n"
    "# (scale with `dragonfly up --scale enrich=2`). Lines whose command this\n"
    "# installation does not have are skipped with a warning.\n"
    + "".join(f"{kind}: dragonfly worker {kind}\n" for kind in KINDS)
    + "scheduler: dragonfly scheduler\nlistener: dragonfly listen\nconsole: dragonfly console\n"
)
"""One worker per shipped kind (:data:`workers.job_kinds.KINDS`), the scheduler, the listener,
the console."""

_LINE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)\s*:\s*(?P<command>\S.*)$")


class ProcfileError(Exception):
    """The Procfile is malformed; the message names the line."""


@dataclass(frozen=True, slots=True)
class ProcessType:
    """One line of the Procfile."""

    name: str
    command: str

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


def parse(text: str, *, source: str = "Procfile") -> list[ProcessType]:
    """Process types in file order."""
    entries: list[ProcessType] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ProcfileError(f"{source}:{number}: expected 'name: command', got {line!r}")
        name, command = match["name"], match["command"].strip()
        if name in seen:
            raise ProcfileError(f"{source}:{number}: process type {name!r} appears twice")
        try:
            shlex.split(command)
        except ValueError as exc:
            raise ProcfileError(f"{source}:{number}: cannot parse command: {exc}") from None
        seen.add(name)
        entries.append(ProcessType(name, command))
    if not entries:
        raise ProcfileError(f"{source}: no process types")
    return entries


def checkout_procfile() -> Path:
    """The repository's Procfile (present in a checkout, absent in a wheel)."""
    return Path(__file__).resolve().parents[2] / "Procfile"


def load(path: Path | None = None) -> tuple[list[ProcessType], str]:
    """Parse ``path``, else ./Procfile, else the checkout's, else the default."""
    candidates = [path] if path is not None else [Path("Procfile"), checkout_procfile()]
    for candidate in candidates:
        if candidate.is_file():
            return parse(candidate.read_text(encoding="utf-8"), source=str(candidate)), str(
                candidate
            )
    if path is not None:
        raise ProcfileError(f"{path}: no such file")
    return parse(DEFAULT_PROCFILE, source="<built-in Procfile>"), "<built-in Procfile>"
