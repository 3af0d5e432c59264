"""Hyperparameter sweeps: grid, random, or coarse grid then fine random search.

    python -m experiments.sweep experiments/sweeps/mlp_lr_norm_grid.yaml
    python -m experiments.sweep experiments/sweeps/mlp_random.yaml --max_trials 10 \\
        -- --data.subset_per_class 200 --trainer.max_epochs 2
    python -m experiments.sweep --method coarse_to_fine --base cifar_mlp   # ready-made LR x WD
    python -m experiments.sweep SPEC --out_dir DIR --resume                # continue a stopped one
    python -m experiments.sweep SPEC --export_wandb sweep_wandb.yaml       # for `wandb sweep`
    python -m experiments.sweep --wandb_agent ENTITY/PROJECT/SWEEP_ID      # run as W&B agent

Flags after `--` go to every trial (after the spec's `flags:`, so they override them).
Trials are ranked by their best validation accuracy, read from their own logs; the best
one's values are written to `<out>/best.yaml`, for `python -m experiments.<base> --config`.

A sweep stopped part-way (Ctrl-C, SIGTERM, a crash) continues with the same command plus
`--resume`: the trials are drawn in the same order, those that finished are read back, the
stopped one continues from its last checkpoint. The spec and the flags after `--` must be
the same; the budget may grow. The time budget counts the read-back trials' own seconds.
"""

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import yaml

from src.callbacks.last_checkpoint import Interrupted
from src.cli.boundary import OneLineArgumentParser, run_command
from src.core.errors import ConfigError, check_range
from src.core.recipes import Recipes
from src.runs.resume_record import open_output
from src.sweeps.runner import Sweep, SweepReport, spec_as_run
from src.sweeps.spec import Budget, SweepSpec, load_spec
from src.sweeps.trial import ISOLATIONS, params_to_flags
from src.sweeps.wandb_config import wandb_sweep_config

COARSE_TO_FINE_SPEC = "coarse_to_fine.yaml"  # in the app's sweep_dir
SETTINGS_FILE = "sweep_settings.json"  # what --resume checks


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m experiments.sweep", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", type=Path,
                        help="sweep spec YAML (experiments/sweeps/*.yaml); optional with "
                             f"--method coarse_to_fine, which then uses {COARSE_TO_FINE_SPEC}")
    parser.add_argument("--base", help="entry point to sweep (overrides the spec's base)")
    parser.add_argument("--method", choices=["grid", "random", "coarse_to_fine"],
                        help="overrides the spec's method")
    parser.add_argument("--trials", type=int, help="random search: number of trials")
    parser.add_argument("--max_trials", type=int, help="budget: at most this many trials")
    parser.add_argument("--max_minutes", type=float, help="budget: wall-clock minutes")
    parser.add_argument("--no_prune", action="store_true",
                        help="let every trial run to the end (no median pruning)")
    parser.add_argument("--out_dir", type=Path,
                        help="output folder (default: runs/sweeps/<name>-<time>)")
    parser.add_argument("--isolation", choices=ISOLATIONS, default="subprocess",
                        help="run each trial in its own process (default) or in this one")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep stopped part-way in --out_dir (same spec "
                             "and flags after --; the budget may grow)")
    parser.add_argument("--export_wandb", type=Path, metavar="FILE",
                        help="write a W&B sweep config to FILE and stop")
    parser.add_argument("--wandb_agent", metavar="SWEEP_ID",
                        help="run as an agent of an existing W&B sweep (see --export_wandb)")
    return parser


def split_extra_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1:]
    return argv, []


def resolve_spec(args: argparse.Namespace, recipes: Recipes) -> SweepSpec:
    path = args.spec
    if path is None:
        if args.method != "coarse_to_fine":
            raise ConfigError("give a sweep spec (experiments/sweeps/*.yaml), or "
                                 "--method coarse_to_fine for the ready-made LR x WD search")
        path = recipes.sweep_dir / COARSE_TO_FINE_SPEC
    spec = load_spec(path)
    budget = Budget(
        max_trials=args.max_trials if args.max_trials is not None else spec.budget.max_trials,
        max_minutes=args.max_minutes if args.max_minutes is not None else spec.budget.max_minutes)
    spec = dataclasses.replace(
        spec, base=args.base or spec.base, method=args.method or spec.method,
        trials=args.trials if args.trials is not None else spec.trials, budget=budget,
        prune=None if args.no_prune else spec.prune)
    if spec.budget.max_trials is not None:
        check_range("--max_trials", spec.budget.max_trials, 1)
    if spec.budget.max_minutes is not None:
        check_range("--max_minutes", spec.budget.max_minutes, 0.0, low_inclusive=False)
    check_range("--trials", spec.trials, 1)
    return spec


def run(argv: list[str], recipes: Recipes) -> SweepReport | None:
    own, extra_flags = split_extra_flags(argv)
    args = build_parser().parse_args(own)
    if args.wandb_agent:
        import wandb

        wandb.agent(args.wandb_agent, count=args.max_trials)
        return None
    spec = resolve_spec(args, recipes)
    module = recipes.module(spec.base)
    if args.export_wandb:
        config = wandb_sweep_config(spec, module, extra_flags)
        args.export_wandb.parent.mkdir(parents=True, exist_ok=True)
        args.export_wandb.write_text(yaml.safe_dump(config, sort_keys=False))
        print(f"W&B sweep config: {args.export_wandb}\n"
              f"  wandb sweep --project PROJECT {args.export_wandb}   # prints SWEEP_ID\n"
              f"  wandb agent ENTITY/PROJECT/SWEEP_ID                  # on each machine")
        return None
    name = args.spec.stem if args.spec else f"{spec.base}_{spec.method}"
    record = {f"the spec's {key}": value for key, value in spec_as_run(spec).items()
              if key != "budget"}
    record["the training flags (after --)"] = extra_flags
    out_dir = open_output(
        args.out_dir, Path("runs/sweeps") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
        args.resume, SETTINGS_FILE, record, "sweep")
    command = recipes.command("sweep", *argv)
    try:
        report = Sweep(spec, module, out_dir, args.isolation, extra_flags).run(command)
    except (KeyboardInterrupt, Interrupted):
        print(f"Interrupted; the trials that finished are in {out_dir / 'results.md'}; "
              f"continue with the same command plus --resume", file=sys.stderr)
        raise SystemExit(130) from None
    if report.best is None:
        print(f"No finished trial to select; see {out_dir / 'results.md'}", file=sys.stderr)
        raise SystemExit(1)
    best = report.best
    print(f"Best {best.name}: val/acc {best.best_val_acc:.4f} with "
          f"{shlex.join(params_to_flags(best.params))}; "
          f"table: {out_dir / 'results.md'}; config: {out_dir / 'best.yaml'}", flush=True)
    return report


def main(argv: list[str] | None, recipes: Recipes) -> SweepReport | None:
    return run_command(lambda: run(sys.argv[1:] if argv is None else argv, recipes))
