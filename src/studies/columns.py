"""The columns a study's table can show: name -> value read from one variant's run.

Accuracies and losses come from the run's own CSV log: "best val acc" is the best epoch
(the checkpoint that was tested), "test acc" that checkpoint on the test split, "train
acc" / "val acc" / "gap" the last epoch. Cells a run did not reach stay empty.
"""

import csv
import math
import statistics
from collections.abc import Callable
from pathlib import Path

from src.core.errors import lookup
from src.studies.runner import VariantResult

Column = Callable[[VariantResult], str]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def last(result: VariantResult, metric: str) -> float | None:
    points = result.traces.get(metric)
    return points[-1].value if points else None


def _gap(result: VariantResult) -> str:
    train, val = last(result, "train/acc"), last(result, "val/acc")
    return "" if train is None or val is None else _fmt(train - val)


def _steps(result: VariantResult) -> str:
    # Epoch-end values are logged at the epoch's last step (0-based): steps = that + 1.
    points = result.traces.get("train/loss_epoch")
    return str(points[-1].step + 1) if points else ""


def _epoch_seconds(result: VariantResult) -> str:
    # The median: the first epoch also pays one-time costs (allocation, caches).
    points = result.traces.get("time/train_epoch_s")
    return _fmt(statistics.median(p.value for p in points), 2) if points else ""


def activation_stats_at_init(result: VariantResult) -> list[dict[str, str]]:
    """The rows of the run's activation_stats.csv for step 0, input -> output."""
    files = sorted(Path(result.trial.run_dir).rglob("activation_stats.csv"))
    if not files:
        return []
    with files[0].open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["step"] == "0"]
    return sorted(rows, key=lambda row: int(row["layer_index"]))


def _init_stat(key: str, layer: int, digits: int = 3) -> Column:
    def column(result: VariantResult) -> str:
        rows = activation_stats_at_init(result)
        return _fmt(float(rows[layer][key]), digits) if rows else ""
    return column


# What each column means, for the footnote under a table that shows it.
COLUMN_NOTES: dict[str, str] = {
    "best val acc": "validation accuracy of the best epoch, whose checkpoint is the one tested",
    "test acc": "test accuracy of that best checkpoint (the test split is read once per run)",
    "train acc": "training accuracy of the last epoch (training mode: dropout, augmentation)",
    "val acc": "validation accuracy of the last epoch",
    "gap": "train acc - val acc, last epoch: how much the run overfits",
    "train loss": "training loss of the last epoch (mean over its batches)",
    "val loss": "validation cross-entropy of the last epoch, whatever the training loss",
    "epochs": "epochs trained (fewer than the budget when early stopping stopped the run)",
    "steps": "optimizer steps trained",
    "s/epoch": "median seconds of a training epoch",
    "run s": "seconds of the whole run (start-up, data, training, test)",
    "act std, first layer @init": "std of the first hidden layer's activations at step 0",
    "act std, last layer @init": "std of the last hidden layer's activations at step 0",
    "dead/saturated, last layer @init": "last hidden layer at step 0: share of ReLU units "
                                        "dead for the whole batch, or of tanh/sigmoid values "
                                        "saturated",
}

COLUMNS: dict[str, Column] = {
    "best val acc": lambda r: _fmt(r.trial.best_val_acc),
    "test acc": lambda r: _fmt(last(r, "test/acc")),
    "train acc": lambda r: _fmt(last(r, "train/acc")),
    "val acc": lambda r: _fmt(last(r, "val/acc")),
    "gap": _gap,  # train acc - val acc, last epoch: how much it overfits
    "train loss": lambda r: _fmt(last(r, "train/loss_epoch")),
    "val loss": lambda r: _fmt(last(r, "val/loss")),  # cross-entropy, whatever the training loss
    "epochs": lambda r: str(r.trial.metrics.epochs) if r.trial.metrics else "",
    "steps": _steps,
    "s/epoch": _epoch_seconds,
    # A resumed run's parts add up, but for one killed without a signal (no record of it).
    "run s": lambda r: f"{r.trial.seconds:.0f}" + (" (resumed)" if r.trial.resumed else ""),
    "act std, first layer @init": _init_stat("act_std", 0, 4),
    "act std, last layer @init": _init_stat("act_std", -1, 4),
    "dead/saturated, last layer @init": _init_stat("inactive", -1, 3),
}


def column_value(name: str, result: VariantResult) -> str:
    return lookup(COLUMNS, name, "study column")(result)
