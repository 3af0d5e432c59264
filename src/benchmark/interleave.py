"""Measure the sides of a comparison in turn, and keep every raw value.

`interleave` runs side A, then B (then C ...), then A again: each pair (a repeat, or a
seed) is measured back to back, so a change in the machine's load over the benchmark
hits both sides alike instead of one side's block of repeats. Every value measured goes
at once into `RawLog`'s CSV, one row each in the order measured (its `order` column),
so the table's medians, ranges, means and ratios can be recomputed from it, and a run
stopped halfway keeps what it measured. A log reopened with `RawLog.resumed` hands those
measurements back to `interleave`, which then measures only what is missing: how the
benchmark's `--resume` continues a run of hours that was stopped.
"""

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RAW_COLUMNS = ("order", "section", "model", "setup", "repeat", "seed", "metric", "value")

# One measurement: metric name -> value (None: not measured in this run).
Measurement = dict[str, float | None]


class RawLog:
    """Keeps every measured value in `path`, rewritten whole after each measurement (a
    kill never leaves half a measurement in it); the `order` column numbers the
    measurements (one per side and pair) as they were made. A new log starts the file
    afresh; `RawLog.resumed(path)` keeps the measurements already in it."""

    def __init__(self, path: Path, earlier: list[dict[str, Any]] | None = None):
        self.path = path
        self.rows: list[dict[str, Any]] = list(earlier or [])
        self.measurements = 1 + max((int(row["order"]) for row in self.rows), default=-1)
        self.reused = 0  # measurements handed back from an earlier run

    @classmethod
    def resumed(cls, path: Path) -> "RawLog":
        with path.open(newline="") as handle:
            return cls(path, list(csv.DictReader(handle)))

    def earlier(self, section: str, model: str, setup: str, repeat: int,
                seed: int) -> Measurement | None:
        """The values of this measurement if an earlier run made it, else None."""
        key = (section, model, setup, str(repeat), str(seed))
        values = {str(row["metric"]): float(row["value"]) for row in self.rows
                  if tuple(str(row[column]) for column in RAW_COLUMNS[1:6]) == key}
        return values or None

    def add(self, section: str, model: str, setup: str, repeat: int, seed: int,
            values: Measurement) -> None:
        self.rows += [{"order": self.measurements, "section": section, "model": model,
                       "setup": setup, "repeat": repeat, "seed": seed, "metric": metric,
                       "value": value} for metric, value in values.items()
                      if value is not None]
        self.measurements += 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=RAW_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(partial, self.path)


def interleave(sides: Mapping[str, Callable[[int], Measurement]], seeds: Sequence[int],
               raw: RawLog, section: str, model: str) -> dict[str, list[Measurement]]:
    """For each pair i (seed `seeds[i]`), run every side once, in the order given:
    A(seeds[0]), B(seeds[0]), A(seeds[1]), B(seeds[1]), ...; returns each side's
    measurements in pair order. Repeats of one seeded setup pass the same seed n times.
    A measurement already in `raw` (from an earlier, stopped run) is reused, not made
    again."""
    results: dict[str, list[Measurement]] = {setup: [] for setup in sides}
    for repeat, seed in enumerate(seeds):
        for setup, measure in sides.items():
            values = raw.earlier(section, model, setup, repeat, seed)
            if values is None:
                values = measure(seed)
                raw.add(section, model, setup, repeat, seed, values)
            else:
                raw.reused += 1
                print(f"{section}, {setup}, seed {seed} (run {repeat + 1}): measured "
                      f"earlier, read from {raw.path}")
            results[setup].append(values)
    return results
