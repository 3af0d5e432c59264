"""The per-class report of one model on one split: confusion matrix (CSV and PNG) and
per-class accuracy (CSV)."""

from collections.abc import Sequence
from pathlib import Path

import torch

from src.reporting.plots import plot_confusion_matrix
from src.reporting.tables import write_csv


def write_class_report(confusion: torch.Tensor, class_accuracy: torch.Tensor,
                       classes: Sequence[str], out_dir: Path, stem: str,
                       title: str) -> list[Path]:
    """Write <stem>_confusion.csv, <stem>_confusion.png and <stem>_per_class.csv.

    confusion: [K, K] counts (row = true class); class_accuracy: [K].
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    confusion = confusion.detach().cpu().to(torch.int64)
    class_accuracy = class_accuracy.detach().cpu()
    confusion_csv = write_csv(out_dir / f"{stem}_confusion.csv", ["true \\ predicted", *classes],
                              [[name, *row] for name, row in zip(classes, confusion.tolist(),
                                                                 strict=True)])
    per_class_csv = write_csv(
        out_dir / f"{stem}_per_class.csv", ["class", "images", "correct", "accuracy"],
        [[name, int(confusion[k].sum()), int(confusion[k, k]), f"{float(class_accuracy[k]):.4f}"]
         for k, name in enumerate(classes)])
    figure = plot_confusion_matrix(confusion, classes, out_dir / f"{stem}_confusion.png", title)
    return [confusion_csv, per_class_csv, figure]
