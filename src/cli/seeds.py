"""Multi-seed runs: one config, N seeds, mean and standard deviation of every final metric.

    python -m experiments.seeds --base cifar_mlp --seeds 3 -- --trainer.max_epochs 5

Run k uses `--seed_everything <first-seed + k>`, which sets the initialization, dropout
and augmentation draws. The data split, the subset and the shuffle order follow
`--data.split_seed`, which stays fixed, so every seed is validated and tested on the
same images. Each metric is read from the run's own log: the best val/acc over epochs,
the last value of every epoch-level metric, and test/acc and test/loss of the best
checkpoint. The std is the sample standard deviation (n - 1).

Files in `<out>`: `seeds.md` and `seeds.csv` (metric, mean, std, n, each seed's value),
rewritten after each seed (a run stopped part-way keeps the seeds that finished), one
run folder per seed, and `seeds_settings.json` (what `--resume` checks).

A run stopped part-way (Ctrl-C, SIGTERM, a crash) continues with the same command plus
`--resume`: the seeds that finished are read back, not rerun; the stopped seed continues
from its last checkpoint (the entry point's `--resume true`); the rest run. `--seeds`
may be larger than before, to add seeds to a finished run.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from src.cli.boundary import OneLineArgumentParser, run_command
from src.cli.sweep import split_extra_flags
from src.core.errors import check_range
from src.core.recipes import Recipes
from src.reporting.tables import markdown_table, write_csv
from src.runs.resume_record import open_output
from src.sweeps.report import seed_summary
from src.sweeps.trial import (
    ISOLATIONS,
    TrialResult,
    check_first_run_started,
    run_or_read_trial,
)

SETTINGS_FILE = "seeds_settings.json"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m experiments.seeds", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="entry point, e.g. cifar_mlp")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--first_seed", type=int, default=0, help="seeds are first .. first+N-1")
    parser.add_argument("--out_dir", type=Path,
                        help="output folder (default: runs/seeds/<base>-<time>)")
    parser.add_argument("--isolation", choices=ISOLATIONS, default="subprocess",
                        help="run each seed in its own process (default) or in this one")
    parser.add_argument("--resume", action="store_true",
                        help="continue the seeds run stopped part-way in --out_dir (same "
                             "--base, --first_seed and training flags; --seeds may grow): "
                             "finished seeds are read back, the stopped one continues from "
                             "its last checkpoint, the rest run")
    return parser


def settings_record(args: argparse.Namespace, extra_flags: list[str]) -> dict[str, Any]:
    """What the seeds in --out_dir were trained with; a resume must match it."""
    return {"--base": args.base, "--first_seed": args.first_seed,
            "the training flags (after --)": extra_flags}


def write_summary(out_dir: Path, results: list[TrialResult], title: str, command: str) -> str:
    """seeds.csv and seeds.md over `results`; returns the text of seeds.md."""
    headers, rows = seed_summary(results)
    write_csv(out_dir / "seeds.csv", headers, rows)
    failed = [r.name for r in results if r.status == "failed"]
    text = (f"# {title}\n\nCommand: `{command}`\n\n"
            f"Mean and sample standard deviation over the seeds that finished"
            f"{' (failed: ' + ', '.join(failed) + ')' if failed else ''}. "
            f"test/*: the best checkpoint (by val/acc); train/* and val/*: the last epoch; "
            f"best val/acc: the best epoch.\n\n"
            + markdown_table(headers, rows))
    (out_dir / "seeds.md").write_text(text)
    return text


def run(argv: list[str], recipes: Recipes) -> list[TrialResult]:
    own, extra_flags = split_extra_flags(argv)
    args = build_parser().parse_args(own)
    check_range("--seeds", args.seeds, 1)
    module = recipes.module(args.base)
    out_dir = open_output(
        args.out_dir, Path("runs/seeds") / f"{args.base}-{time.strftime('%Y%m%d-%H%M%S')}",
        args.resume, SETTINGS_FILE, settings_record(args, extra_flags), "seeds run")
    command = recipes.command("seeds", *argv)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        name, params = f"seed_{seed}", {"seed_everything": seed}
        trial_dir = out_dir / name
        # No progress bars in the run's output.log (the user's flags come after, and win).
        result = run_or_read_trial(module, name, params,
                                   ["--trainer.enable_progress_bar", "false", *extra_flags,
                                    "--seed_everything", str(seed)], trial_dir, args.isolation)
        results.append(result)
        if len(results) == 1:
            check_first_run_started(result)
        if result.status == "failed":
            print(f"[seeds] seed {seed} failed ({result.error}); log: "
                  f"{result.run_dir / 'output.log'}", flush=True)
        else:
            final = result.metrics.final
            print(f"[seeds] seed {seed}: best val/acc {result.best_val_acc:.4f}, test/acc "
                  f"{final.get('test/acc', float('nan')):.4f}, {result.how_run()}", flush=True)
        # After every seed, so that a run stopped part-way keeps the seeds that finished.
        done = "" if len(results) == args.seeds else f"{len(results)} of "
        text = write_summary(out_dir, results, f"{args.base}: {done}{args.seeds} seeds", command)
    print(text, flush=True)
    failed = [r.name for r in results if r.status == "failed"]
    if len(failed) == len(results):
        raise SystemExit(1)
    return results


def main(argv: list[str] | None, recipes: Recipes) -> list[TrialResult]:
    return run_command(lambda: run(sys.argv[1:] if argv is None else argv, recipes))


if __name__ == "__main__":
    main()
