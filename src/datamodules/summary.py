"""The numbers to look at before training: shapes, pixel range, statistics, class balance."""

from dataclasses import asdict, dataclass

import torch

from src.datamodules.base import ImageDataModule

SPLITS = ("train", "val", "test")


@dataclass
class DataSummary:
    """What a datamodule holds after `setup()`. Statistics are of the training split only
    (the images the network learns from; validation and test stay unseen)."""

    dataset: str
    data_dir: str
    classes: list[str]
    channels: int
    height: int
    width: int
    dtype: str  # as stored in memory
    pixel_min: list[int]  # per channel, training split, raw pixel values
    pixel_max: list[int]
    mean: list[float]  # per channel, in [0, 1] units (pixel / 255), training split
    std: list[float]
    class_counts: dict[str, list[int]]  # split -> images per class

    @property
    def normalized_min(self) -> list[float]:
        """The smallest input the network sees, per channel, after normalization."""
        return [(low / 255 - m) / s for low, m, s in zip(self.pixel_min, self.mean, self.std,
                                                        strict=True)]

    @property
    def normalized_max(self) -> list[float]:
        return [(high / 255 - m) / s for high, m, s in zip(self.pixel_max, self.mean, self.std,
                                                          strict=True)]

    def as_dict(self) -> dict:
        return {**asdict(self), "normalized_min": self.normalized_min,
                "normalized_max": self.normalized_max}


def summarize(datamodule: ImageDataModule, dataset: str) -> DataSummary:
    """Summarize a datamodule whose `setup()` has run."""
    train = datamodule.train_set.images  # [N, C, H, W] uint8
    num_classes = len(datamodule.classes)
    sets = {"train": datamodule.train_set, "val": datamodule.val_set,
            "test": datamodule.test_set}
    return DataSummary(
        dataset=dataset,
        data_dir=str(datamodule.data_dir),
        classes=list(datamodule.classes),
        channels=train.shape[1],
        height=train.shape[2],
        width=train.shape[3],
        dtype=str(train.dtype).removeprefix("torch."),
        pixel_min=train.amin(dim=(0, 2, 3)).tolist(),
        pixel_max=train.amax(dim=(0, 2, 3)).tolist(),
        mean=datamodule.mean.tolist(),
        std=datamodule.std.tolist(),
        class_counts={split: torch.bincount(sets[split].labels, minlength=num_classes).tolist()
                      for split in SPLITS},
    )


def _row(values: list) -> str:
    return "| " + " | ".join(str(value) for value in values) + " |"


def to_markdown(summary: DataSummary) -> str:
    channel_names = (["gray"] if summary.channels == 1 else
                     ["R", "G", "B"] if summary.channels == 3 else
                     [f"c{i}" for i in range(summary.channels)])
    totals = {split: sum(counts) for split, counts in summary.class_counts.items()}
    lines = [
        f"# Data: {summary.dataset}",
        "",
        f"Folder: `{summary.data_dir}`",
        "",
        "| property | value |",
        "|---|---|",
        f"| classes | {len(summary.classes)} |",
        f"| channels | {summary.channels} |",
        f"| resolution (H x W) | {summary.height} x {summary.width} |",
        f"| dtype in memory | {summary.dtype} |",
        f"| images train / val / test | {totals['train']} / {totals['val']} / "
        f"{totals['test']} |",
        "",
        "Per channel, training split (mean and std in [0, 1] units, pixel / 255; the "
        "network sees (pixel / 255 - mean) / std):",
        "",
        _row(["channel", "min", "max", "mean", "std", "normalized min", "normalized max"]),
        "|---|---|---|---|---|---|---|",
    ]
    for c, name in enumerate(channel_names):
        lines.append(_row([name, summary.pixel_min[c], summary.pixel_max[c],
                           f"{summary.mean[c]:.4f}", f"{summary.std[c]:.4f}",
                           f"{summary.normalized_min[c]:.3f}",
                           f"{summary.normalized_max[c]:.3f}"]))
    lines += ["", "Images per class:", "", _row(["class", *SPLITS]),
              "|---|" + "---|" * len(SPLITS)]
    for k, name in enumerate(summary.classes):
        lines.append(_row([name, *(summary.class_counts[split][k] for split in SPLITS)]))
    lines.append(_row(["**total**", *(totals[split] for split in SPLITS)]))
    return "\n".join(lines) + "\n"
