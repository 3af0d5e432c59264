"""Study: the batch size. `python -m experiments.study_batch_size --help`"""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick, sgd_momentum
from src.studies.study import Study, Variant

BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)

STUDY = Study(
    name="study_batch_size",
    title="Batch size: 16 to 1024 at the same learning rate and epochs",
    question="With the same epochs and the same optimizer (SGD, momentum 0.9, lr 0.01), how "
             "do accuracy, the number of optimizer steps and the time per epoch change with "
             "the batch size?",
    base="cifar_mlp",
    common_flags=(*plain_mlp(), *sgd_momentum(0.01)),
    variants=tuple(
        Variant(f"batch {size}", ("--data.batch_size", str(size)),
                "small batches: many noisy steps per epoch, slow epochs" if size == 16 else
                "large batches: few steps per epoch, fast epochs, and at the same learning "
                "rate less progress per epoch" if size == 1024 else "")
        for size in BATCH_SIZES),
    budgets={"quick": quick(500, 4), "full": full(20)},
    columns=("best val acc", "test acc", "train loss", "steps", "s/epoch", "run s"),
    panels=("val acc per epoch", "train loss per epoch", "seconds per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
