"""The command line every study shares: `python -m experiments.<study> [flags] [-- flags]`.

    --budget quick|full        quick (default): a stratified subset and a few epochs, a
                               CPU in minutes; full: the full training set, GPU-sized epochs
    --out_dir DIR              default runs/studies/<study>-<time>; must be new or empty
    --isolation subprocess|inprocess
    --variants LABEL ...       run only these variants (default: all)
    --resume                   continue the study stopped part-way in --out_dir (same
                               budget and flags after --): finished variants are read back,
                               the stopped one continues from its last checkpoint
    -- FLAGS                   go to every run, last, e.g. -- --data.data_dir X
                               --trainer.accelerator gpu --wandb.enabled true

With `--wandb.enabled true` the runs of one study are one W&B group (the output folder's
name), each run named after its variant.
"""

import argparse
import sys
import time
from pathlib import Path

from src.cli.boundary import OneLineArgumentParser, run_command
from src.cli.sweep import split_extra_flags
from src.core.errors import ConfigError
from src.core.recipes import Recipes
from src.runs.resume_record import open_output
from src.studies.report import write_report
from src.studies.runner import VariantResult, run_study
from src.studies.study import BUDGETS, Study, Variant
from src.sweeps.trial import ISOLATIONS

SETTINGS_FILE = "study_settings.json"  # what --resume checks


def build_parser(study: Study, recipes: Recipes) -> argparse.ArgumentParser:
    labels = ", ".join(repr(v.label) for v in study.variants)
    parser = OneLineArgumentParser(
        prog=f"python -m {recipes.package}.{study.name}",
        description=f"{study.title}: {study.question}\n\n{__doc__}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=BUDGETS, default="quick",
                        help="; ".join(f"{name}: {study.budgets[name].description}"
                                       for name in BUDGETS))
    parser.add_argument("--out_dir", type=Path,
                        help=f"output folder (default: runs/studies/{study.name}-<time>)")
    parser.add_argument("--isolation", choices=ISOLATIONS, default="subprocess",
                        help="run each variant in its own process (default) or in this one")
    parser.add_argument("--variants", nargs="+", metavar="LABEL",
                        help=f"run only these variants, of: {labels}")
    parser.add_argument("--resume", action="store_true",
                        help="continue the study stopped part-way in --out_dir (same --budget "
                             "and flags after --; --variants may change): finished variants "
                             "are read back, the stopped one continues from its last "
                             "checkpoint, the rest run")
    return parser


def select_variants(study: Study, labels: list[str] | None) -> list[Variant]:
    if not labels:
        return list(study.variants)
    by_label = {variant.label: variant for variant in study.variants}
    unknown = [label for label in labels if label not in by_label]
    if unknown:  # labels keep their capitals (ResNet18, MLP), so no lower-casing lookup()
        raise ConfigError(f"unknown {study.name} variant {unknown[0]!r}; choose from: "
                          f"{', '.join(repr(label) for label in by_label)}")
    return [by_label[label] for label in dict.fromkeys(labels)]  # in the order given, once each


def run(study: Study, recipes: Recipes, argv: list[str]) -> list[VariantResult]:
    own, extra_flags = split_extra_flags(argv)
    args = build_parser(study, recipes).parse_args(own)
    variants = select_variants(study, args.variants)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = open_output(
        args.out_dir, Path("runs/studies") / f"{study.name}-{stamp}", args.resume,
        SETTINGS_FILE, {"--budget": args.budget, "the training flags (after --)": extra_flags},
        f"{study.name} study")
    # Grouped in W&B (when enabled): before the user's flags, which may rename them.
    wandb_flags = ["--wandb.group", out_dir.resolve().name]
    started = time.monotonic()

    def report(results: list[VariantResult]) -> str:
        return write_report(study, recipes, results, args.budget, argv, out_dir,
                            time.monotonic() - started)

    results = run_study(study, recipes, variants, args.budget, [*wandb_flags, *extra_flags],
                        out_dir, args.isolation, after_each=report)
    text = report(results)
    print(text, flush=True)
    print(f"[{study.name}] table and plot: {out_dir / 'results.md'}", flush=True)
    if all(r.trial.status == "failed" and r.diverged_at_step is None for r in results):
        raise SystemExit(1)
    return results


def main(study: Study, recipes: Recipes, argv: list[str] | None = None) -> list[VariantResult]:
    return run_command(lambda: run(study, recipes, sys.argv[1:] if argv is None else argv))
