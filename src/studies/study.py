"""What a study is: a question, a base entry point, and a few variants that differ in
a handful of flags, trained under one of two budgets.

Every run of a study is `python -m experiments.<base>` with, in this order (later flags
win): the study's common flags, the budget's flags, the variant's flags, the variant's
flags for that budget, and the user's flags after `--`.
"""

from dataclasses import dataclass, field

BUDGETS = ("quick", "full")


@dataclass(frozen=True)
class Variant:
    label: str  # the row's name in the table, the line's in the plot, the run's folder
    flags: tuple[str, ...]
    note: str = ""  # one sentence for the report: what this variant shows
    budget_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)  # budget -> flags
    base: str | None = None  # another entry point than the study's (e.g. the MLP's)


@dataclass(frozen=True)
class Budget:
    flags: tuple[str, ...]
    description: str  # one line for the report, e.g. "500 images per class, 5 epochs, CPU"


@dataclass(frozen=True)
class Study:
    name: str  # the module: python -m experiments.<name>
    title: str
    question: str  # the question the study answers, one or two sentences
    base: str  # entry point, e.g. cifar_mlp
    common_flags: tuple[str, ...]  # the settings every variant shares
    variants: tuple[Variant, ...]
    budgets: dict[str, Budget]  # "quick" and "full"
    # Table columns after the variant's label (names in src/studies/columns.py).
    columns: tuple[str, ...] = ("best val acc", "test acc", "epochs", "run s")
    # Plot panels (names in src/studies/panels.py).
    panels: tuple[str, ...] = ("train loss per step", "val acc per epoch")
    # Where the runs find their data, as the report's command says (no machine's paths).
    data_env: str = "CIFAR10_DIR"

    def own_flags(self, variant: Variant, budget: str) -> list[str]:
        """The flags of the budget and the variant (after the common flags)."""
        return [*self.budgets[budget].flags, *variant.flags,
                *variant.budget_flags.get(budget, ())]
