"""Small server-rendered SVG charts of the queue history (no JavaScript).

A chart is one series of (time, value) points over a fixed window ending now, drawn as a
polyline (levels such as depth) or as bars (counts per bucket such as jobs done), with
the largest value and the window's ends as labels. The points come from
``dragonfly.queue_samples`` (one per queue per minute); the day window sums or takes the
maximum of 15-minute buckets so a chart never has more than a hundred-odd marks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

WINDOWS = {
    "hour": (timedelta(hours=1), timedelta(minutes=1)),
    "day": (timedelta(days=1), timedelta(minutes=15)),
}
"""Window name -> (span, bucket)."""

WIDTH = 320
HEIGHT = 64
PAD = 2


@dataclass(frozen=True, slots=True)
class Series:
    """Bucketed values over a window: ``values[i]`` covers ``start + i * bucket``."""

    start: datetime
    bucket: timedelta
    values: list[float | None]

    @property
    def peak(self) -> float:
        return max((v for v in self.values if v is not None), default=0.0)

    @property
    def total(self) -> float:
        return sum(v for v in self.values if v is not None)


def bucketed(
    points: Iterable[tuple[datetime, float]],
    *,
    now: datetime,
    window: str,
    how: str,
) -> Series:
    """``points`` gathered into the window's buckets: ``how`` is "sum" (counts) or "max"."""
    span, bucket = WINDOWS[window]
    count = int(span / bucket)
    end = now - (now - datetime.min.replace(tzinfo=now.tzinfo)) % bucket + bucket
    start = end - count * bucket
    values: list[float | None] = [None] * count
    for at, value in points:
        if at < start or at >= end:
            continue
        index = int((at - start) / bucket)
        current = values[index]
        if current is None:
            values[index] = float(value)
        elif how == "sum":
            values[index] = current + float(value)
        else:
            values[index] = max(current, float(value))
    return Series(start, bucket, values)


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def svg(series: Series, *, title: str, style: str = "line", unit: str = "") -> str:
    """The chart as an inline ``<svg>`` element (``style``: "line" or "bars")."""
    peak = series.peak
    scale = (HEIGHT - 2 * PAD - 12) / peak if peak > 0 else 0.0
    n = len(series.values)
    step = (WIDTH - 2 * PAD) / max(n, 1)
    base = HEIGHT - PAD

    def y(value: float) -> float:
        return base - value * scale

    marks: list[str] = []
    if style == "bars":
        for i, value in enumerate(series.values):
            if not value:
                continue
            top = y(value)
            marks.append(
                f'<rect x="{PAD + i * step:.1f}" y="{top:.1f}" width="{max(step - 0.5, 0.5):.1f}"'
                f' height="{base - top:.1f}" class="bar"/>'
            )
    else:
        points = [
            f"{PAD + (i + 0.5) * step:.1f},{y(v):.1f}"
            for i, v in enumerate(series.values)
            if v is not None
        ]
        if len(points) == 1:
            x, py = points[0].split(",")
            marks.append(f'<circle cx="{x}" cy="{py}" r="2" class="dot"/>')
        elif points:
            marks.append(f'<polyline points="{" ".join(points)}" class="line"/>')
    empty = (
        ""
        if any(v is not None for v in series.values)
        else (
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2 + 4:.0f}" text-anchor="middle"'
            ' class="muted">no samples yet</text>'
        )
    )
    label = escape(f"{title}: peak {_label(peak)}{unit}")
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' role="img" aria-label="{label}"><title>{label}</title>'
        f'<line x1="{PAD}" y1="{base}" x2="{WIDTH - PAD}" y2="{base}" class="axis"/>'
        + "".join(marks)
        + empty
        + f'<text x="{PAD}" y="10" class="muted">{escape(title)} · peak {_label(peak)}{unit}</text>'
        "</svg>"
    )


def history_charts(
    samples: Sequence[dict[str, object]], queues: Sequence[str], *, now: datetime, window: str
) -> dict[str, dict[str, str]]:
    """queue -> {"depth", "throughput", "failures"} charts from queue_samples rows."""
    per_unit = "/min" if window == "hour" else "/15 min"
    out: dict[str, dict[str, str]] = {}
    for queue in queues:
        mine = [s for s in samples if s["queue"] == queue]

        def points(
            column: str, rows: list[dict[str, object]] = mine
        ) -> list[tuple[datetime, float]]:
            return [(r["sampled_at"], float(r[column] or 0)) for r in rows]  # type: ignore[misc, arg-type]

        out[queue] = {
            "depth": svg(
                bucketed(points("depth"), now=now, window=window, how="max"), title="depth"
            ),
            "throughput": svg(
                bucketed(points("done"), now=now, window=window, how="sum"),
                title="done",
                style="bars",
                unit=per_unit,
            ),
            "failures": svg(
                bucketed(points("dead_lettered"), now=now, window=window, how="sum"),
                title="dead-lettered",
                style="bars",
                unit=per_unit,
            ),
        }
    return out
