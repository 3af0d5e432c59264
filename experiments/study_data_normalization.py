"""Study: input normalization. `python -m experiments.study_data_normalization --help`"""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick, sgd_momentum
from src.studies.study import Study, Variant

STUDY = Study(
    name="study_data_normalization",
    title="Input normalization: raw pixels, [0, 1], or training-split statistics",
    question="Does it matter how the pixels are scaled before the first layer (same MLP, "
             "same optimizer and learning rate)?",
    base="cifar_mlp",
    common_flags=(*plain_mlp(), *sgd_momentum(0.01), "--data.batch_size", "128"),
    variants=(
        Variant("none (0..255)", ("--data.normalization", "none"),
                "raw pixel values: the first layer's outputs are ~100x too large, so the "
                "rate that suits normalized inputs is far too high"),
        Variant("unit ([0, 1])", ("--data.normalization", "unit"),
                "pixel / 255: the right scale, but every input is positive and off-centre"),
        Variant("standardize (train mean/std)", ("--data.normalization", "standardize"),
                "per channel (x - mean) / std of the training split: centred, unit scale"),
    ),
    budgets={"quick": quick(500, 5), "full": full(30)},
    columns=("best val acc", "test acc", "train loss", "run s"),
    panels=("train loss per step", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
