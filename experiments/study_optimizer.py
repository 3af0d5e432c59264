"""Study: optimizers. `python -m experiments.study_optimizer --help`"""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick
from src.studies.study import Study, Variant


def optimizer(name: str, lr: str, *extra: str) -> tuple[str, ...]:
    return ("--model.optimizer", name, "--model.lr", lr, *extra)


NO_MOMENTUM = ("--model.momentum", "0", "--model.nesterov", "false")
MOMENTUM = ("--model.momentum", "0.9", "--model.nesterov", "false")
NESTEROV = ("--model.momentum", "0.9", "--model.nesterov", "true")

STUDY = Study(
    name="study_optimizer",
    title="Optimizers: SGD, momentum, Nesterov, Adagrad, RMSprop, Adam, AdamW, LAMB",
    question="How fast does each optimizer train the same MLP, each at a learning rate that "
             "suits it (the rate is in the variant's name), with a constant rate?",
    base="cifar_mlp",
    common_flags=(*plain_mlp(), "--data.batch_size", "128"),
    variants=(
        Variant("SGD lr 0.1", optimizer("sgd", "0.1", *NO_MOMENTUM),
                "plain gradient steps: the baseline"),
        Variant("SGD+momentum lr 0.01", optimizer("sgd", "0.01", *MOMENTUM),
                "momentum 0.9 averages about 10 gradients: the same effective step as SGD "
                "at 0.1, smoother"),
        Variant("Nesterov lr 0.01", optimizer("sgd", "0.01", *NESTEROV),
                "momentum with the gradient taken at the look-ahead point"),
        Variant("Adagrad lr 0.01", optimizer("adagrad", "0.01"),
                "per-weight rates that only shrink: fast start, then it slows down"),
        Variant("RMSprop lr 0.0003", optimizer("rmsprop", "0.0003"),
                "per-weight rates from a running mean of squared gradients"),
        Variant("Adam lr 0.001", optimizer("adam", "0.001"),
                "RMSprop with momentum and bias correction"),
        Variant("AdamW lr 0.001 wd 0.05", optimizer("adamw", "0.001", "--model.weight_decay",
                                                    "0.05"),
                "Adam with decoupled weight decay (the only variant with weight decay)"),
        Variant("LAMB lr 0.003", optimizer("lamb", "0.003"),
                "Adam's direction with a per-layer trust ratio (made for large batches)"),
    ),
    budgets={"quick": quick(500, 5), "full": full(30)},
    columns=("best val acc", "test acc", "train loss", "run s"),
    panels=("train loss per step", "train loss per epoch", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
