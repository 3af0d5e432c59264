"""What a study leaves behind: results.md (question, command, budget, hardware, table,
one sentence per variant, the plot), results.csv (the table) and results.png."""

import os
import shlex
from pathlib import Path

from src.core.recipes import Recipes
from src.reporting.hardware import hardware_line
from src.reporting.tables import markdown_table, write_csv
from src.studies.columns import COLUMN_NOTES, column_value
from src.studies.panels import plot_study
from src.studies.runner import VariantResult
from src.studies.study import Study

PLOT_FILE = "results.png"


def study_table(study: Study, results: list[VariantResult]) -> tuple[list[str], list[list]]:
    headers = ["variant", *study.columns, "outcome"]
    rows = [[result.variant.label, *(column_value(name, result) for name in study.columns),
             result.outcome] for result in results]
    return headers, rows


def _variant_flags(result: VariantResult, budget: str, recipes: Recipes) -> str:
    variant = result.variant
    own = [*variant.flags, *variant.budget_flags.get(budget, ())]
    flags = f"`{shlex.join(own)}`" if own else "the common flags only"
    return f"`{recipes.package}.{variant.base}` with {flags}" if variant.base else flags


def portable_command(study: Study, recipes: Recipes, argv: list[str]) -> str:
    """The study's command as anyone can run it: the data named by its environment
    variable (`CIFAR10_DIR=path/to/cifar10`), never by this machine's folders."""
    shown, skip = [], False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("--data.data_dir", "--out_dir") and index + 1 < len(argv):
            skip = True
            if arg == "--out_dir" and not Path(argv[index + 1]).is_absolute():
                shown += [arg, argv[index + 1]]  # a folder of the project: keep it
            continue
        shown.append(arg)
    while shown and shown[-1] == "--":
        shown.pop()
    folder = study.data_env.removesuffix("_DIR").lower()
    return f"{study.data_env}=path/to/{folder} {recipes.command(study.name, *shown)}"


def _resume_note(results: list[VariantResult]) -> str:
    """How much of the study an earlier, stopped invocation did ("" when none)."""
    earlier = sum(r.trial.earlier for r in results)
    resumed = sum(r.trial.resumed for r in results)
    if not earlier and not resumed:
        return ""
    return (f" of this invocation, which read back {earlier} finished runs of an earlier "
            f"one and continued {resumed} from its last checkpoint")


def write_report(study: Study, recipes: Recipes, results: list[VariantResult], budget: str,
                 command: list[str], out_dir: Path, seconds: float) -> str:
    """Write results.md, results.csv and results.png into out_dir; return the markdown."""
    headers, rows = study_table(study, results)
    write_csv(out_dir / "results.csv", headers, rows)
    plot_study(results, study.panels, study.title, out_dir / PLOT_FILE)
    base = recipes.command(study.base, *study.common_flags)
    footnote = "; ".join(f"{name}: {COLUMN_NOTES[name]}" for name in study.columns
                         if name in COLUMN_NOTES)
    notes = "\n".join(f"- **{r.variant.label}** ({_variant_flags(r, budget, recipes)})"
                      f"{': ' + r.variant.note if r.variant.note else ''}" for r in results)
    text = (
        f"# {study.title}\n\n"
        f"**Question.** {study.question}\n\n"
        f"- Command: `{portable_command(study, recipes, command)}`\n"
        f"- Budget: {budget}: {study.budgets[budget].description} "
        f"(`{shlex.join(study.budgets[budget].flags)}`)\n"
        f"- Every variant: `{base}`, then the variant's flags\n"
        f"- Hardware: {hardware_line()}; {len(results)} runs in {seconds / 60:.1f} min"
        f"{_resume_note(results)} "
        f"(load average {os.getloadavg()[0]:.1f} at the end: seconds are only comparable "
        f"within one table)\n\n"
        + markdown_table(headers, rows)
        + f"\n{footnote}; outcome: finished, diverged (the step where the loss or the weights "
          f"stopped being finite) or failed.\n\n"
        + notes + f"\n\n![{study.title}]({PLOT_FILE})\n")
    (out_dir / "results.md").write_text(text)
    return text
