"""Study: the learning rate. `python -m experiments.study_learning_rate --help`"""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick, sgd_momentum
from src.studies.study import Study, Variant

STUDY = Study(
    name="study_learning_rate",
    title="Learning rate: very high, high, good, low",
    question="What does the training loss do when the learning rate is too high, too low "
             "or about right (MLP, SGD with momentum 0.9, constant rate)?",
    base="cifar_mlp",
    common_flags=(*plain_mlp(), *sgd_momentum(0.01), "--data.batch_size", "128"),
    variants=(
        Variant("lr 1.0 (very high)", ("--model.lr", "1.0"),
                "the updates overshoot: the loss explodes (the run stops at the first "
                "non-finite loss) or stalls at chance"),
        Variant("lr 0.1 (high)", ("--model.lr", "0.1"),
                "the loss falls fast at first, then plateaus high and noisy"),
        Variant("lr 0.01 (good)", ("--model.lr", "0.01"),
                "the loss falls steadily; the best validation accuracy"),
        Variant("lr 0.0003 (low)", ("--model.lr", "0.0003"),
                "the loss falls, but slowly: the budget ends long before it converges"),
    ),
    budgets={"quick": quick(500, 5), "full": full(30)},
    columns=("best val acc", "test acc", "train loss", "epochs", "run s"),
    panels=("train loss per step", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
