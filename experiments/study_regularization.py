"""Study: the regularization chain on the MLP (`--help` for the flags)."""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import plain_mlp
from src.studies.study import Budget, Study, Variant

# A small training subset, so the big MLP can memorize it: the baseline overfits.
QUICK_PER_CLASS, FULL_PER_CLASS = 100, 500
QUICK_EPOCHS, FULL_EPOCHS = 25, 60

# Decoupled weight decay (AdamW): with Adam, an L2 penalty is divided by the adaptive step
# sizes, and the 0.05 of an earlier version of this study underfit on its own (and made
# "all together" the worst variant).
WEIGHT_DECAY = ("--model.weight_decay", "0.05")
# Patience of 5 validations: a run slowed down by the other remedies still improves
# slowly after its first plateau (patience 3 stopped "all together" at epoch 10).
EARLY_STOPPING = ("--early_stopping.patience", "5")
DROPOUT = ("--model.dropout", "0.3")
MORE_DATA = {"quick": ("--data.subset_per_class", str(4 * QUICK_PER_CLASS)),
             "full": ("--data.subset_per_class", str(4 * FULL_PER_CLASS))}
AUGMENTATION = ("--data.augment", "[crop,flip]")
BATCH_NORM = ("--model.norm", "batch")

STUDY = Study(
    name="study_regularization",
    title="Regularization chain on the MLP: baseline overfits, then each remedy",
    question="A big MLP on a small training subset overfits (train accuracy far above "
             "validation). How much of the gap does each regularizer close on its own, "
             "added to the baseline alone, and all of them together?",
    base="cifar_mlp",
    common_flags=(*plain_mlp("[1024,512,256]"), "--model.optimizer", "adamw", "--model.lr",
                  "0.001", "--data.batch_size", "128"),
    variants=(
        Variant("baseline", (), "no regularization: it memorizes the training subset"),
        Variant("+ weight decay", WEIGHT_DECAY,
                "decoupled weight decay 0.05 (AdamW): keeps the weights small"),
        Variant("+ early stopping", EARLY_STOPPING,
                "stops 5 epochs after the best val acc; every variant already tests its "
                "best checkpoint, so early stopping saves epochs rather than accuracy"),
        Variant("+ dropout", DROPOUT, "drops 30% of the hidden units at each step"),
        Variant("+ more data", (), "4x as many training images per class", MORE_DATA),
        Variant("+ augmentation", AUGMENTATION, "random crops (pad 4) and flips"),
        Variant("+ batch norm", BATCH_NORM, "normalization layers (noisy batch statistics)"),
        Variant("all together", (*WEIGHT_DECAY, *EARLY_STOPPING, *DROPOUT, *AUGMENTATION,
                                 *BATCH_NORM), "every remedy above at once", MORE_DATA),
    ),
    budgets={
        "quick": Budget(("--data.subset_per_class", str(QUICK_PER_CLASS),
                         "--trainer.max_epochs", str(QUICK_EPOCHS)),
                        f"{QUICK_PER_CLASS} training images per class, {QUICK_EPOCHS} epochs; "
                        f"minutes on a CPU; each remedy is added to the baseline alone"),
        "full": Budget(("--data.subset_per_class", str(FULL_PER_CLASS),
                        "--trainer.max_epochs", str(FULL_EPOCHS)),
                       f"{FULL_PER_CLASS} training images per class, {FULL_EPOCHS} epochs; "
                       f"sized for a GPU; each remedy is added to the baseline alone"),
    },
    columns=("train acc", "val acc", "gap", "best val acc", "test acc", "epochs", "run s"),
    panels=("train acc per epoch", "val acc per epoch", "train loss per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
