"""Tables and files that sweeps and multi-seed runs leave behind: CSV, markdown, best config."""

import math
import statistics
from typing import Any

import yaml

from src.sweeps.run_metrics import MONITOR
from src.sweeps.trial import TrialResult, format_flag_value


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def rank_trials(results: list[TrialResult]) -> list[TrialResult]:
    """Best validation accuracy first; failed trials last; ties keep the trial order."""
    return sorted(results, key=lambda r: -r.best_val_acc if r.best_val_acc is not None
                  else math.inf)


def best_trial(results: list[TrialResult]) -> TrialResult | None:
    ranked = [r for r in rank_trials(results) if r.best_val_acc is not None]
    return ranked[0] if ranked else None


def _note(result: TrialResult) -> str:
    if result.status == "pruned":
        p = result.pruned
        return (f"pruned after epoch {p['epoch']}: {MONITOR} {p['val_acc']:.4f} < median "
                f"{p['median']:.4f} of {p['earlier_trials']} earlier trials")
    return result.error


def trial_table(results: list[TrialResult], keys: list[str]) -> tuple[list[str], list[list]]:
    """Rows ranked by validation accuracy; validation numbers only (selection is on
    validation; the test accuracy of the selected trial is reported on its own)."""
    headers = ["rank", "trial", "phase", *keys, f"best {MONITOR}", "best epoch", "epochs",
               "status", "seconds", "note"]
    rows = []
    for rank, result in enumerate(rank_trials(results), start=1):
        metrics = result.metrics
        rows.append([
            rank, result.name, result.phase,
            *(format_flag_value(result.params.get(key)) for key in keys),
            _fmt(result.best_val_acc), "" if not metrics else metrics.best_epoch,
            "" if not metrics else metrics.epochs, result.status, f"{result.seconds:.0f}",
            _note(result),
        ])
    return headers, rows


def best_config_yaml(result: TrialResult, header_lines: list[str]) -> str:
    """The best trial's swept values as a config layer for `--config`."""
    nested: dict[str, Any] = {}
    for key, value in result.params.items():
        node = nested
        *sections, name = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = list(value) if isinstance(value, tuple) else value
    comments = "".join(f"# {line}\n" for line in header_lines)
    return comments + yaml.safe_dump(nested, sort_keys=True)


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); the std of one value is nan."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return mean, std


def seed_summary(results: list[TrialResult]) -> tuple[list[str], list[list]]:
    """One row per metric: mean, std and every seed's value, over the finished runs."""
    finished = [r for r in results if r.metrics is not None and r.status == "done"]
    per_run = [{f"best {MONITOR}": r.metrics.best_val_acc, **r.metrics.final} for r in finished]
    names = list(dict.fromkeys(name for values in per_run for name in values))
    headers = ["metric", "mean", "std", "n", *(r.name for r in finished)]
    rows = []
    for name in names:
        values = [values.get(name) for values in per_run]
        present = [v for v in values if v is not None]
        mean, std = mean_and_std(present)
        rows.append([name, _fmt(mean), _fmt(std), len(present), *(_fmt(v) for v in values)])
    return headers, rows
