"""The sweep loop: trial after trial under one budget, pruning poor trials, writing tables.

Every trial is the entry point run with the spec's fixed flags, the command line's extra
flags, the phase's flags and the trial's values, in `<out>/trial_NNN`. After every trial
the tables are rewritten, so an interrupted sweep keeps what it found.

Files in `<out>`: `trials.csv` and `results.md` (ranked by best validation accuracy),
`best.yaml` (the best trial's values as a config layer for `--config`), `spec.yaml`,
`history_<phase>.json` (what the pruner compares with), `sweep_settings.json` (what
`--resume` checks) and one folder per trial.
"""

import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from src.reporting.tables import markdown_table, write_csv
from src.sweeps.pruning import MedianPruner, add_to_history
from src.sweeps.report import best_config_yaml, best_trial, trial_table
from src.sweeps.run_metrics import MONITOR
from src.sweeps.space import Range, grid, refine_around, sample, space_to_parameters
from src.sweeps.spec import Budget, SweepSpec
from src.sweeps.trial import (
    TrialResult,
    check_first_run_started,
    format_flag_value,
    params_to_flags,
    read_stopped_parts,
    run_or_read_trial,
)


class BudgetClock:
    """Shared budget: at most `max_trials` trials and `max_minutes` of wall clock.

    No trial starts once either is spent; a running trial gets the remaining time as
    the Trainer's `max_time`, so it stops (and is still tested) when the budget ends.
    """

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic):
        self.budget = budget
        self.clock = clock
        self.started = clock()

    def charge(self, seconds: float) -> None:
        """Count `seconds` spent before this clock started (trials read back on a resume)."""
        self.started -= seconds

    def remaining_seconds(self) -> float | None:
        if self.budget.max_minutes is None:
            return None
        return self.budget.max_minutes * 60 - (self.clock() - self.started)

    def exhausted(self, trials_run: int) -> str | None:
        """Why no further trial may start, or None."""
        if self.budget.max_trials is not None and trials_run >= self.budget.max_trials:
            return f"trial budget spent ({self.budget.max_trials} trials)"
        remaining = self.remaining_seconds()
        if remaining is not None and remaining < 1:
            return f"time budget spent ({self.budget.max_minutes:g} minutes)"
        return None


def max_time_flag(seconds: float) -> list[str]:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return ["--trainer.max_time", f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"]


@dataclass
class SweepReport:
    out_dir: Path
    results: list[TrialResult] = field(default_factory=list)
    best: TrialResult | None = None
    stop_reason: str = ""
    notes: list[str] = field(default_factory=list)


def _pruner_flag(history: Path, spec: SweepSpec) -> list[str]:
    callback = {"class_path": f"{MedianPruner.__module__}.{MedianPruner.__name__}",
                "init_args": {"history": str(history),
                              "after_epochs": spec.prune.after_epochs,
                              "min_trials": spec.prune.min_trials}}
    return ["--trainer.callbacks+=" + json.dumps(callback)]


def _describe(params: dict[str, Any]) -> str:
    return " ".join(f"{key}={format_flag_value(value)}" for key, value in params.items())


class Sweep:
    def __init__(self, spec: SweepSpec, module: str, out_dir: Path, isolation: str = "subprocess",
                 extra_flags: list[str] | None = None, echo: Callable[[str], None] = print):
        self.spec = spec
        self.module = module
        self.isolation = isolation
        self.extra_flags = list(extra_flags or [])
        self.echo = echo
        self.report = SweepReport(out_dir)
        self.budget = BudgetClock(spec.budget)
        self.command = ""

    # -- phases --

    def run(self, command: str = "") -> SweepReport:
        self.command = command
        out = self.report.out_dir
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.yaml").write_text(self._spec_yaml())
        spec = self.spec
        if spec.method == "grid":
            self._run_phase("grid", iter(grid(spec.space)), [])
        elif spec.method == "random":
            rng = random.Random(spec.seed)
            self._run_phase("random", (sample(spec.space, rng) for _ in range(spec.trials)), [])
        else:
            self._coarse_to_fine()
        finished = [r for r in self.report.results
                    if spec.method != "coarse_to_fine" or r.phase == "fine"]
        self.report.best = best_trial(finished)
        self._write_files()
        return self.report

    def _coarse_to_fine(self) -> None:
        steps = self.spec.coarse_to_fine
        coarse = self._run_phase("coarse", iter(grid(self.spec.space)),
                                 ["--trainer.max_epochs", str(steps.coarse_epochs)])
        best = best_trial(coarse)
        if best is None:
            self.report.notes.append("no coarse trial finished, so there is nothing to refine")
            return
        refinement = refine_around(self.spec.space, best.params)
        for key in refinement.at_edge:
            self.report.notes.append(
                f"the best coarse {key} ({format_flag_value(best.params[key])}) is on the edge "
                f"of the grid: the optimum may lie outside it; widen the range")
        ranges = ", ".join(f"{key} in [{d.low:g}, {d.high:g}]" if isinstance(d, Range)
                           else f"{key} = {d.values[0]}" for key, d in refinement.space.items())
        line = f"Fine phase around {best.name} ({MONITOR} {best.best_val_acc:.4f}): {ranges}."
        self.report.notes.insert(0, line)
        self.echo(f"[sweep] {line}")
        rng = random.Random(self.spec.seed)
        self._run_phase("fine", (sample(refinement.space, rng) for _ in range(steps.fine_trials)),
                        ["--trainer.max_epochs", str(steps.fine_epochs)])

    def _run_phase(self, phase: str, trials: Iterator[dict[str, Any]],
                   phase_flags: list[str]) -> list[TrialResult]:
        history = self.report.out_dir / f"history_{phase}.json"
        results = []
        for params in trials:
            reason = self.budget.exhausted(len(self.report.results))
            if reason:
                self.report.stop_reason = reason
                break
            result = self._run_one(phase, params, phase_flags, history)
            results.append(result)
            if result.metrics is not None:
                add_to_history(history, result.name, result.metrics.val_acc_by_epoch)
            self._write_files()
        return results

    def _run_one(self, phase: str, params: dict[str, Any], phase_flags: list[str],
                 history: Path) -> TrialResult:
        number = len(self.report.results)
        name = f"trial_{number:03d}"
        # No progress bars in the trial's output.log; the spec's and the user's flags win.
        flags = ["--trainer.enable_progress_bar", "false", *self.spec.flags, *self.extra_flags,
                 *phase_flags, *params_to_flags(params)]
        if self.spec.prune is not None:
            flags += _pruner_flag(history, self.spec)
        trial_dir = self.report.out_dir / name
        remaining = self.budget.remaining_seconds()
        if remaining is not None:
            flags += max_time_flag(remaining)
        # A resumed sweep reads back its finished trials and continues the stopped one; the
        # trials are drawn in the same order (grid, seeded random), so trial_NNN is the same.
        result = run_or_read_trial(self.module, name, params, flags, trial_dir, self.isolation)
        # Budget spent in earlier runs of the sweep: a trial read back whole, or the parts
        # of the continued one that a signal stopped. Those were not taken off its max_time
        # above: its Trainer counts them itself (elapsed time restored from the checkpoint).
        self.budget.charge(result.seconds if result.earlier
                           else sum(read_stopped_parts(trial_dir)))
        result.phase = phase
        self.report.results.append(result)
        self.echo(self._trial_line(result))
        if number == 0:
            check_first_run_started(result)
        return result

    # -- output --

    def _trial_line(self, result: TrialResult) -> str:
        head = f"[sweep] {result.name} ({result.phase}) {_describe(result.params)}:"
        if result.status == "failed":
            return f"{head} failed ({result.error}); log: {result.run_dir / 'output.log'}"
        metrics = result.metrics
        line = (f"{head} best {MONITOR} {metrics.best_val_acc:.4f} at epoch {metrics.best_epoch}"
                f", {metrics.epochs} epochs, {result.how_run()}")
        if result.status == "pruned":
            line += f" (pruned: below the median {result.pruned['median']:.4f})"
        return line

    def _spec_yaml(self) -> str:
        """The spec as run (command-line overrides applied): a valid spec file itself."""
        header = (f"# Command: {self.command}\n# Trials: python -m {self.module}, isolation "
                  f"{self.isolation}, extra flags: {' '.join(self.extra_flags) or 'none'}\n")
        return header + yaml.safe_dump(spec_as_run(self.spec), sort_keys=False)

    def _write_files(self) -> None:
        report, out = self.report, self.report.out_dir
        keys = list(self.spec.space)
        headers, rows = trial_table(report.results, keys)
        write_csv(out / "trials.csv", headers, rows)
        best = report.best if report.best is not None else best_trial(report.results)
        lines = [f"# Sweep: {self.spec.method} over {', '.join(keys)} ({self.spec.base})", ""]
        if self.command:
            lines += [f"Command: `{self.command}`", ""]
        lines += [f"{len(report.results)} trials, ranked by best {MONITOR} (validation).", ""]
        text = "\n".join(lines) + "\n" + markdown_table(headers, rows)
        summary = []
        if best is not None:
            test_acc = best.metrics.final.get("test/acc")
            summary.append(
                f"Best: {best.name}, {_describe(best.params)}, {MONITOR} {best.best_val_acc:.4f}"
                + ("" if test_acc is None else f"; its test/acc {test_acc:.4f} (reported, "
                   "not used for selection)"))
        if report.stop_reason:
            summary.append(f"Stopped: {report.stop_reason}.")
        summary += report.notes
        text += "".join(f"\n{line}\n" for line in summary)
        (out / "results.md").write_text(text)
        if report.best is not None:
            config = out / "best.yaml"
            config.write_text(best_config_yaml(report.best, [
                f"Best trial of the sweep in {out}: {report.best.name}, best {MONITOR} "
                f"{report.best.best_val_acc:.4f}.",
                f"Use: python -m {self.module} --config {config}",
            ]))


def spec_as_run(spec: SweepSpec) -> dict[str, Any]:
    """The spec's settings as a spec file holds them (command-line overrides applied)."""
    return {"base": spec.base, "method": spec.method,
            "parameters": space_to_parameters(spec.space), "trials": spec.trials,
            "seed": spec.seed, "flags": list(spec.flags),
            "budget": dataclasses.asdict(spec.budget),
            "prune": dataclasses.asdict(spec.prune) if spec.prune else False,
            "coarse_to_fine": dataclasses.asdict(spec.coarse_to_fine)}
