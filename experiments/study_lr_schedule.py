"""Study: learning-rate schedules. `python -m experiments.study_lr_schedule --help`"""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick, sgd_momentum
from src.studies.study import Study, Variant

QUICK_EPOCHS, FULL_EPOCHS = 8, 30


def per_budget(flag: str, quick_value: str, full_value: str) -> dict[str, tuple[str, ...]]:
    """A schedule length in epochs that scales with the budget's epochs."""
    return {"quick": (flag, quick_value), "full": (flag, full_value)}


STUDY = Study(
    name="study_lr_schedule",
    title="Learning-rate schedules",
    question="Which learning-rate schedule trains the MLP best in a fixed number of epochs, "
             "all with the same peak rate (SGD, momentum 0.9, lr 0.05)?",
    base="cifar_mlp",
    common_flags=(*plain_mlp(), *sgd_momentum(0.05), "--data.batch_size", "128"),
    variants=(
        Variant("constant", ("--model.scheduler", "constant"), "the peak rate all along"),
        Variant("step", ("--model.scheduler", "step", "--model.step_gamma", "0.1"),
                "x0.1 every third of the run",
                per_budget("--model.step_size_epochs", str(QUICK_EPOCHS // 3),
                           str(FULL_EPOCHS // 3))),
        Variant("exponential", ("--model.scheduler", "exponential"),
                "x gamma every epoch, down to 3-4% of the peak by the end",
                per_budget("--model.exponential_gamma", "0.65", "0.9")),
        Variant("cosine", ("--model.scheduler", "cosine"),
                "half a cosine from the peak to 0, every step"),
        Variant("warm-up + cosine", ("--model.scheduler", "cosine", "--model.warmup_epochs", "1"),
                "a linear ramp over the first epoch, then the cosine"),
        Variant("one-cycle", ("--model.scheduler", "onecycle"),
                "up from peak/25 over the first quarter, then down to almost 0"),
        Variant("cyclic", ("--model.scheduler", "cyclic", "--model.cyclic_base_lr", "0.001"),
                "triangles between 0.001 and the peak, one epoch up, one down",
                per_budget("--model.cyclic_step_epochs", "1", "3")),
        Variant("reduce on plateau", ("--model.scheduler", "reduce_on_plateau",
                                      "--model.plateau_patience", "1"),
                "x0.1 when val/loss has not improved for 2 validations"),
    ),
    budgets={"quick": quick(500, QUICK_EPOCHS), "full": full(FULL_EPOCHS)},
    columns=("best val acc", "test acc", "train loss", "run s"),
    panels=("lr per epoch", "train loss per epoch", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
