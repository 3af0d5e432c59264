"""What a finished run reports, read from its own CSV log (`metrics.csv`).

Sweeps and multi-seed runs select and summarize with these numbers only: validation
accuracy per epoch as the run logged it (its best is the checkpoint callback's best
score, which monitors val/acc in mode max), and the final value of every epoch-level
metric, including the test metrics the entry point logs for the best checkpoint.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

MONITOR = "val/acc"


@dataclass(frozen=True)
class RunMetrics:
    val_acc_by_epoch: dict[int, float]  # epoch (0-based) -> val/acc logged at its end
    final: dict[str, float]  # metric -> its last logged value (test/* once, at the end)

    @property
    def best_epoch(self) -> int | None:
        if not self.val_acc_by_epoch:
            return None
        return max(self.val_acc_by_epoch, key=lambda epoch: self.val_acc_by_epoch[epoch])

    @property
    def best_val_acc(self) -> float | None:
        epoch = self.best_epoch
        return None if epoch is None else self.val_acc_by_epoch[epoch]

    @property
    def epochs(self) -> int:
        return len(self.val_acc_by_epoch)


def _is_summary_metric(name: str) -> bool:
    # Per-step values and learning rates are traces, not results.
    return name not in ("epoch", "step") and not name.startswith("lr") \
        and not name.endswith("_step")


def find_metrics_file(run_root: Path) -> Path | None:
    """The CSV log under a run's root folder (the newest, should there be several)."""
    files = list(run_root.rglob("metrics.csv"))
    return max(files, key=lambda path: path.stat().st_mtime) if files else None


def read_metrics(path: Path) -> RunMetrics:
    val_acc: dict[int, float] = {}
    final: dict[str, float] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            for name, text in row.items():
                if text in (None, "") or not _is_summary_metric(name):
                    continue
                final[name] = float(text)
                if name == MONITOR:
                    val_acc[int(float(row["epoch"]))] = float(text)
    return RunMetrics(val_acc, final)


@dataclass(frozen=True)
class Point:
    step: int  # optimizer steps taken when the value was logged
    epoch: int | None  # None for values logged outside the epoch loop (LR monitor)
    value: float


def read_traces(path: Path) -> dict[str, list[Point]]:
    """Every logged value of every metric, in the order logged (plots of a whole run)."""
    traces: dict[str, list[Point]] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            epoch = int(float(row["epoch"])) if row.get("epoch") else None
            for name, text in row.items():
                if name not in ("epoch", "step") and text not in (None, ""):
                    traces.setdefault(name, []).append(
                        Point(int(float(row["step"])), epoch, float(text)))
    return traces
