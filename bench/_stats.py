"""Summary statistics the benchmarks print."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: a value that was measured, never above the maximum."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]
