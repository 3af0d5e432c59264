"""Study: normalization layers. `python -m experiments.study_normalization --help`"""

from dataclasses import replace

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, quick
from src.studies.study import Study, Variant

# Quick budget: a ResNet18 a quarter as wide (1/16 of the compute), so it trains on a
# CPU in minutes; the full budget uses the real widths [64, 128, 256, 512].
NARROW = {"quick": ("--model.resnet_widths", "[16,32,64,128]")}
RESNET_NORMS = ("batch", "layer", "group", "instance", "none")
MLP_NORMS = ("none", "batch", "layer")
GROUPS = {"group": ("--model.norm_groups", "8")}  # groups of 8 channels

NOTES = {
    "batch": "normalizes each channel over the batch: trains fastest at this learning rate",
    "layer": "normalizes each image over all its channels (and pixels)",
    "group": "normalizes groups of 8 channels of each image: batch-independent",
    "instance": "normalizes each channel of each image: removes per-image contrast",
    "none": "no normalization layer: the signal scale drifts with depth and training is "
            "slower or unstable at the same learning rate",
}

STUDY = Study(
    name="study_normalization",
    title="Normalization layers: ResNet18 and the MLP",
    question="How do batch, layer, group and instance normalization (and none) change "
             "training of a ResNet18 and of an MLP at the same optimizer and learning rate?",
    base="cifar_resnet18",
    common_flags=("--model.optimizer", "sgd", "--model.lr", "0.05", "--model.momentum", "0.9",
                  "--model.nesterov", "true", "--model.weight_decay", "5e-4",
                  "--model.scheduler", "onecycle", "--model.label_smoothing", "0",
                  "--model.dropout", "0",
                  "--data.batch_size", "128", "--data.augment", "[]",
                  "--early_stopping.patience", "1000", "--trainer.log_every_n_steps", "5"),
    variants=(
        *(Variant(f"ResNet18 {norm}", ("--model.norm", norm, *GROUPS.get(norm, ())),
                  NOTES[norm], NARROW)
          for norm in RESNET_NORMS),
        *(Variant(f"MLP {norm}", ("--model.norm", norm, "--model.hidden_widths", "[512,256]"),
                  NOTES[norm], base="cifar_mlp")
          for norm in MLP_NORMS),
    ),
    budgets={"quick": replace(quick(300, 3), description=quick(300, 3).description
                              + "; ResNet18 widths [16,32,64,128], a quarter of the real ones"),
             "full": full(30)},
    columns=("best val acc", "test acc", "train loss", "s/epoch", "run s"),
    panels=("train loss per step", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
