"""Measure the sides of a comparison in turn, and keep every raw value.

`interleave` runs side A, then B (then C ...), then A again: each pair (a repeat, or a
seed) is measured back to back, so a change in the machine's load over the benchmark
hits both sides alike instead of one side's block of repeats. Every value measured goes
at once into `RawLog`'s CSV, one row each in the order measured (its `order` column),
so the table's medians, ranges, means and ratios can be recomputed from it, and a run
stopped halfway keeps what it measured.
"""

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

RAW_COLUMNS = ("order", "section", "model", "setup", "repeat", "seed", "metric", "value")

# One measurement: metric name -> value (None: not measured in this run).
Measurement = dict[str, float | None]


class RawLog:
    """Appends every measured value to `path` (written afresh by the first value); the
    `order` column numbers the measurements (one per side and pair) as they were made."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, object]] = []
        self.measurements = 0

    def add(self, section: str, model: str, setup: str, repeat: int, seed: int,
            values: Measurement) -> None:
        new = [{"order": self.measurements, "section": section, "model": model,
                "setup": setup, "repeat": repeat, "seed": seed, "metric": metric,
                "value": value} for metric, value in values.items() if value is not None]
        first = self.measurements == 0
        if first:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w" if first else "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=RAW_COLUMNS)
            if first:
                writer.writeheader()
            writer.writerows(new)
        self.rows += new
        self.measurements += 1


def interleave(sides: Mapping[str, Callable[[int], Measurement]], seeds: Sequence[int],
               raw: RawLog, section: str, model: str) -> dict[str, list[Measurement]]:
    """For each pair i (seed `seeds[i]`), run every side once, in the order given:
    A(seeds[0]), B(seeds[0]), A(seeds[1]), B(seeds[1]), ...; returns each side's
    measurements in pair order. Repeats of one seeded setup pass the same seed n times."""
    results: dict[str, list[Measurement]] = {setup: [] for setup in sides}
    for repeat, seed in enumerate(seeds):
        for setup, measure in sides.items():
            values = measure(seed)
            raw.add(section, model, setup, repeat, seed, values)
            results[setup].append(values)
    return results
