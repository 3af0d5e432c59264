"""Study: the training loss. `python -m experiments.study_loss --help`"""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick, sgd_momentum
from src.studies.study import Study, Variant

STUDY = Study(
    name="study_loss",
    title="Training loss: cross-entropy vs MSE vs L1",
    question="Same network, optimizer and learning rate: how well does the MLP train with "
             "cross-entropy, or with MSE or L1 between the softmax and the one-hot target?",
    base="cifar_mlp",
    common_flags=(*plain_mlp(), *sgd_momentum(0.05), "--data.batch_size", "128"),
    variants=(
        Variant("cross-entropy", ("--model.loss", "cross_entropy"),
                "-log p(true class): large gradients while a prediction is confidently wrong"),
        Variant("MSE", ("--model.loss", "mse"),
                "squared error on the probabilities: the gradient fades as the softmax "
                "saturates, right or wrong"),
        Variant("L1", ("--model.loss", "l1"),
                "absolute error on the probabilities: constant-size pushes, weakest signal"),
    ),
    budgets={"quick": quick(500, 5), "full": full(30)},
    # val/loss is the plain cross-entropy for every variant; train loss is each objective.
    columns=("best val acc", "test acc", "train loss", "val loss", "run s"),
    panels=("train loss per epoch", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
