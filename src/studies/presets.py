"""Settings several studies share, so each study states only what it varies."""

from src.studies.study import Budget

# CIFAR-10 has 4,500 training images per class after the 10% validation split.
FULL_DATA = "the full training split (45,000 images)"


def plain_mlp(widths: str = "[512,256]") -> tuple[str, ...]:
    """An MLP with nothing that hides the effect studied: no normalization layer, no
    dropout, no weight decay, no augmentation, a constant rate and no early stopping
    (patience longer than any budget); the loss is logged every 5 steps for the plots."""
    return ("--model.hidden_widths", widths, "--model.norm", "none", "--model.dropout", "0",
            "--model.weight_decay", "0", "--model.scheduler", "constant",
            "--model.label_smoothing", "0", "--data.augment", "[]",
            "--early_stopping.patience", "1000", "--trainer.log_every_n_steps", "5")


def sgd_momentum(lr: float) -> tuple[str, ...]:
    return ("--model.optimizer", "sgd", "--model.lr", str(lr), "--model.momentum", "0.9",
            "--model.nesterov", "false")


def quick(per_class: int, epochs: int, device: str = "CPU") -> Budget:
    return Budget(("--data.subset_per_class", str(per_class), "--trainer.max_epochs", str(epochs)),
                  f"{per_class} training images per class (stratified subset), {epochs} epochs; "
                  f"minutes on a {device}")


def full(epochs: int, per_class: int | None = None) -> Budget:
    subset = ("--data.subset_per_class", str(per_class)) if per_class else ()
    data = f"{per_class} training images per class" if per_class else FULL_DATA
    return Budget((*subset, "--trainer.max_epochs", str(epochs)),
                  f"{data}, {epochs} epochs; sized for a GPU")
