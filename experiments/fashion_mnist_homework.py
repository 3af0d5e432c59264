"""The FashionMNIST homework as a study. `python -m experiments.fashion_mnist_homework --help`

The network stays a 3-Linear-layer MLP (784-256-128-10, then 784-512-256-10) trained for
10 epochs; only normalization, activation and dropout layers and training settings change,
one step at a time, each step keeping the ones before it. The last step is the recipe of
`python -m experiments.fashion_mnist_mlp`. FashionMNIST is read from --data.data_dir (or
$FASHION_MNIST_DIR): an image folder or torchvision's files, downloaded when missing.
"""

from itertools import accumulate

from experiments import RECIPES
from src.cli import study as cli
from src.studies.study import Budget, Study, Variant

EPOCHS = 10  # the assignment's
QUICK_PER_CLASS = 1000

# (label, flags added by this step, note); each variant keeps every earlier step.
STEPS = (
    ("baseline", (), "sigmoid, plain SGD lr 0.01, batch 64: the starting point"),
    ("+ ReLU", ("--model.act", "relu"), "no saturation: gradients reach the first layer"),
    ("+ batch norm", ("--model.norm", "batch"), "each hidden layer normalized over the batch"),
    ("+ dropout 0.2", ("--model.dropout", "0.2"), "20% of hidden units dropped per step"),
    ("+ AdamW lr 2e-3, wd 0.01", ("--model.optimizer", "adamw", "--model.lr", "0.002",
                                  "--model.weight_decay", "0.01"),
     "per-weight step sizes and decoupled weight decay"),
    ("+ one-cycle, batch 128", ("--model.scheduler", "onecycle",
                                "--model.onecycle_pct_start", "0.2", "--data.batch_size", "128"),
     "warm-up then anneal"),
    ("+ widths 512-256, lr 4e-3", ("--model.hidden_widths", "[512,256]", "--model.lr", "0.004"),
     "the same three Linear layers, twice as wide (experiments/sweeps/"
     "fashion_mnist_homework.yaml)"),
    ("+ GELU, label smoothing 0.1, dropout 0.1 (everything)",
     ("--model.act", "gelu", "--model.label_smoothing", "0.1", "--model.dropout", "0.1"),
     "smoother activation, softer targets, less dropout; this is the fashion_mnist_mlp "
     "recipe, chosen on validation (experiments/sweeps/fashion_mnist_homework_round3.yaml "
     "and _round4.yaml)"),
)

STUDY = Study(
    name="fashion_mnist_homework",
    title="FashionMNIST homework: the 3-layer MLP, 10 epochs, step by step",
    question="How far do normalization, activation and dropout layers and training settings "
             "take the same 3-Linear-layer MLP in 10 epochs (the assignment's bar: 90% test "
             "accuracy)?",
    base="fashion_mnist_mlp",
    data_env="FASHION_MNIST_DIR",
    common_flags=("--model.hidden_widths", "[256,128]", "--model.act", "sigmoid",
                  "--model.norm", "none", "--model.dropout", "0", "--model.optimizer", "sgd",
                  "--model.lr", "0.01", "--model.momentum", "0", "--model.nesterov", "false",
                  "--model.weight_decay", "0", "--model.scheduler", "constant",
                  "--model.label_smoothing", "0", "--data.batch_size", "64", "--data.augment", "[]",
                  "--early_stopping.patience", "1000", "--trainer.log_every_n_steps", "10"),
    variants=tuple(
        Variant(label, flags, note) for (label, _, note), flags in zip(
            STEPS, accumulate((step[1] for step in STEPS), lambda done, new: (*done, *new)),
            strict=True)),
    budgets={
        "quick": Budget(("--data.subset_per_class", str(QUICK_PER_CLASS),
                         "--trainer.max_epochs", str(EPOCHS)),
                        f"{QUICK_PER_CLASS} training images per class (stratified subset), "
                        f"{EPOCHS} epochs; minutes on a CPU"),
        "full": Budget(("--trainer.max_epochs", str(EPOCHS)),
                       f"the full training split (54,000 images), {EPOCHS} epochs as the "
                       f"assignment says; minutes on a CPU, less on a GPU"),
    },
    columns=("train acc", "best val acc", "test acc", "run s"),
    panels=("train loss per epoch", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
