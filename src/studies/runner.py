"""Run every variant of a study through its entry point, one run folder per variant.

A run stopped by the divergence guard (src/callbacks/finite_guard.py) is a result of the
study (that learning rate diverges), not a failure: it is kept, with the step at which
the loss or the weights stopped being finite.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from src.core.recipes import Recipes
from src.core.settings import unused_settings
from src.modules.classifier import SETTING_GROUPS
from src.studies.study import Study, Variant
from src.sweeps.run_metrics import Point, find_metrics_file, read_traces
from src.sweeps.trial import TrialResult, check_first_run_started, run_or_read_trial

# The first words of FiniteGuard's messages, as the entry point prints them.
DIVERGED_PREFIXES = ("error: training loss is", "error: weights became non-finite")
_STEP = re.compile(r"\bat step (\d+)\b")


@dataclass
class VariantResult:
    variant: Variant
    trial: TrialResult

    @cached_property
    def traces(self) -> dict[str, list[Point]]:
        """Every metric the run logged (empty when it logged nothing)."""
        path = find_metrics_file(self.trial.run_dir)
        return read_traces(path) if path else {}

    @property
    def diverged_at_step(self) -> int | None:
        """The step at which the divergence guard stopped the run; None if it did not."""
        if not self.trial.error.startswith(DIVERGED_PREFIXES):
            return None
        match = _STEP.search(self.trial.error)
        return int(match.group(1)) if match else -1

    @property
    def outcome(self) -> str:
        """"finished", "diverged at step N" or "failed: <error line>"."""
        step = self.diverged_at_step
        if step is not None:
            return f"diverged at step {step}"
        if self.trial.status == "failed":
            return f"failed: {self.trial.error.removeprefix('error: ')}"
        return "finished"


def slug(label: str) -> str:
    """A folder name for a variant label: 'lr 0.1 (high)' -> 'lr_0.1_high'."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", label).strip("_") or "variant"


def model_values(recipe: Path, flags: list[str]) -> dict[str, object]:
    """The `model:` settings a run of `recipe` with `flags` gets (flags as `--model.K V`)."""
    values = dict((yaml.safe_load(recipe.read_text()) or {}).get("model") or {})
    for flag, value in zip(flags[::2], flags[1::2], strict=False):
        if flag.startswith("--model."):
            values[flag.removeprefix("--model.")] = yaml.safe_load(value)
    return values


def drop_unused(flags: list[str], unused: dict[str, object]) -> tuple[list[str], list[str]]:
    """Split `--key value` pairs into those kept and the `--model.<name>` options in
    `unused` (options of a choice this run does not make)."""
    kept, dropped = [], []
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        name = flag.removeprefix("--model.")
        (dropped if flag.startswith("--model.") and name in unused else kept).extend(
            [flag, value])
    return kept, dropped


def run_study(study: Study, recipes: Recipes, variants: list[Variant], budget: str,
              extra_flags: list[str], out_dir: Path, isolation: str,
              after_each: Callable[[list[VariantResult]], object] | None = None,
              ) -> list[VariantResult]:
    """Run the variants in order; `after_each(results so far)` follows every run, so an
    interrupted study keeps the table of the runs it finished."""
    results = []
    for variant in variants:
        base = variant.base or study.base
        module = recipes.module(base)
        own = study.own_flags(variant, budget)
        # Flags for every run (the study's common ones, the user's after --) go to the runs
        # whose choices use them: --model.momentum is for the SGD variants, not Adam's.
        unused = unused_settings(SETTING_GROUPS, model_values(
            recipes.config(base), [*study.common_flags, *own, *extra_flags]))
        common, _ = drop_unused(list(study.common_flags), unused)
        extra, dropped_extra = drop_unused(extra_flags, unused)
        if dropped_extra:
            print(f"[{study.name}] {variant.label}: {' '.join(dropped_extra)} not used here "
                  f"(the run's choices do not use it)", flush=True)
        # The W&B run (when enabled) is named after the variant, unless the user says otherwise.
        # The output goes to a log file: no progress bars in it.
        flags = ["--trainer.enable_progress_bar", "false", *common, *own,
                 "--wandb.name", variant.label, *extra]
        # A fresh study's folders are new; a resumed one reads back its finished runs.
        trial = run_or_read_trial(module, variant.label, {}, flags,
                                  out_dir / slug(variant.label), isolation)
        if not results:
            check_first_run_started(trial)
        result = VariantResult(variant, trial)
        results.append(result)
        best = trial.best_val_acc
        print(f"[{study.name}] {variant.label}: {result.outcome}"
              f"{f', best val/acc {best:.4f}' if best is not None else ''}, "
              f"{trial.how_run()}", flush=True)
        if after_each is not None:
            after_each(results)
    return results
