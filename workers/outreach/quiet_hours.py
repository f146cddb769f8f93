"""Quiet hours in the plaintiff's own time zone.

The window is two local wall-clock times from settings: quiet from
``quiet_hours_start`` (default 20:00) until ``quiet_hours_end`` (default 09:00),
wrapping midnight when start > end. Equal times mean no quiet hours. Outside the
window outreach proceeds; inside it the job is deferred to the moment the window
ends, computed in the plaintiff's zone (so DST changes are handled by zoneinfo).

A plaintiff whose ``timezone`` is not a valid IANA name is treated as being in
``FALLBACK_ZONE`` (the column's default), and the caller logs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FALLBACK_ZONE = "America/New_York"


def parse_hhmm(value: str) -> time:
    """``"20:00"`` -> ``time(20, 0)``; settings validate the pattern first."""
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def zone_of(name: str | None) -> tuple[ZoneInfo, bool]:
    """The plaintiff's zone and whether it was valid (False: the fallback is used)."""
    if name:
        try:
            return ZoneInfo(name.strip()), True
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(FALLBACK_ZONE), False


@dataclass(frozen=True)
class QuietHours:
    """Quiet from ``start`` until ``end``, local wall-clock time."""

    start: time
    end: time

    @classmethod
    def from_settings(cls, start: str, end: str) -> QuietHours:
        return cls(parse_hhmm(start), parse_hhmm(end))

    def is_quiet(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start > self.end:  # wraps midnight, e.g. 20:00-09:00
            return local >= self.start or local < self.end
        return self.start <= local < self.end

    def opens_at(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """None when ``now`` is outside quiet hours; else when they end (UTC)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        local = now.astimezone(zone)
        wall = local.time().replace(tzinfo=None)
        if not self.is_quiet(wall):
            return None
        day = local.date()
        if self.start > self.end and wall >= self.start:
            day += timedelta(days=1)  # evening part: the window ends tomorrow morning
        opens = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
        # A DST gap can put a nonexistent wall time slightly in the past; never go back.
        return max(opens, now.astimezone(UTC))
