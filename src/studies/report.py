"""What a study leaves behind: results.md (question, command, budget, hardware, table,
one sentence per variant, the plot), results.csv (the table) and results.png."""

import platform
import shlex
from pathlib import Path

import torch

from src.cli.recipes import Recipes
from src.studies.columns import column_value
from src.studies.plots import plot_study
from src.studies.runner import VariantResult
from src.studies.study import Study
from src.sweeps.report import markdown_table, write_csv

PLOT_FILE = "results.png"


def hardware_line() -> str:
    """The GPU's name, or the CPU's model and core count, and the torch version."""
    if torch.cuda.is_available():
        device = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        device = f"CPU {cpu_model()} ({torch.get_num_threads()} threads)"
    return f"{device}; torch {torch.__version__}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def write_report(study: Study, recipes: Recipes, results: list[VariantResult], budget: str,
                 command: list[str], out_dir: Path, seconds: float) -> str:
    """Write results.md, results.csv and results.png into out_dir; return the markdown."""
    headers, rows = study_table(study, results)
    write_csv(out_dir / "results.csv", headers, rows)
    plot_study(results, study.panels, study.title, out_dir / PLOT_FILE)
    base = recipes.command(study.base, *study.common_flags)
    notes = "\n".join(f"- **{r.variant.label}** ({_variant_flags(r, budget, recipes)})"
                      f"{': ' + r.variant.note if r.variant.note else ''}" for r in results)
    text = (
        f"# {study.title}\n\n"
        f"**Question.** {study.question}\n\n"
        f"- Command: `{recipes.command(study.name, *command)}`\n"
        f"- Budget: {budget}: {study.budgets[budget].description} "
        f"(`{shlex.join(study.budgets[budget].flags)}`)\n"
        f"- Every variant: `{base}`, then the variant's flags\n"
        f"- Hardware: {hardware_line()}; {len(results)} runs in {seconds / 60:.1f} min\n\n"
        + markdown_table(headers, rows)
        + "\nbest val acc: the best epoch (its checkpoint is the one tested); train acc, "
          "val acc, gap: the last epoch.\n\n"
        + notes + f"\n\n![{study.title}]({PLOT_FILE})\n")
    (out_dir / "results.md").write_text(text)
    return text
