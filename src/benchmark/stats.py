"""The statistics every benchmark row reports, computed from the raw measurements.

Repeated timings (throughput, overhead) are reported as the median with the range
(min, max): one slow repeat (another job on the machine, a page-cache miss) moves the
median little and shows in the range. A comparison of two sides is the median of the
ratios of the pairs measured back to back (A, B, A, B, ...), so a slow stretch of the
machine hits both members of a pair and mostly cancels in their ratio. Runs over seeds
(time to accuracy, training to the end) are reported as mean and sample standard
deviation (n - 1), the usual way to state a result over seeds.
"""

import statistics
from collections.abc import Sequence
from typing import NamedTuple


class Spread(NamedTuple):
    center: float  # the median
    low: float  # the smallest value
    high: float  # the largest value


def median_range(values: Sequence[float]) -> Spread:
    """Median, min and max of `values` (at least one)."""
    if not values:
        raise ValueError("no values to summarize")
    return Spread(statistics.median(values), min(values), max(values))


def pair_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """numerators[i] / denominators[i] for each pair i measured back to back."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} values against {len(denominators)}: "
                         f"ratios need pairs")
    return [top / bottom for top, bottom in zip(numerators, denominators, strict=True)]


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1) of `values`; no std (None) for one
    value, since one seed says nothing about the spread."""
    if not values:
        raise ValueError("no values to summarize")
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.mean(values), std
