"""Classify a folder of the user's own images with a trained checkpoint.

The checkpoint knows what it needs (`InputSettings`): the image size and channels, the
input scaling of its training data (input_mean, input_std) and the class names. Images
of another size are resized (bilinear) and converted to the checkpoint's channels (RGB
or grayscale); nothing else about the training data is needed.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from src.core.errors import DataError
from src.datamodules.sources import IMAGE_SUFFIXES, opened_image
from src.modules.classifier import ImageClassifier


@dataclass
class FolderPredictions:
    files: list[Path]  # relative to the folder, sorted
    probs: torch.Tensor  # [N, K]
    classes: list[str]


def image_files(folder: Path) -> list[Path]:
    """Every image file under `folder` (subfolders too), sorted by path."""
    if not folder.is_dir():
        raise DataError(f"--data.predict_dir {folder} is not a folder; give the folder of "
                        f"images to classify")
    files = sorted(path for path in folder.rglob("*")
                   if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
                        f" files, subfolders included)")
    return files


def load_images(files: list[Path], channels: int, size: int) -> torch.Tensor:
    """uint8 [N, channels, size, size]: each file converted and resized as needed."""
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise DataError(f"the checkpoint expects {channels}-channel images; only 1 (gray) or "
                        f"3 (RGB) can be read from image files")
    arrays = []
    for path in files:
        with opened_image(path) as image:
            image = image.convert(mode)
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.uint8).reshape(size, size, channels))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def predict_folder(model: ImageClassifier, folder: Path, trainer: L.Trainer,
                   batch_size: int = 256) -> FolderPredictions:
    """Class probabilities of every image in `folder`, on the trainer's device."""
    settings = model.input_settings
    if settings.class_names is None:
        raise DataError("the checkpoint has no class names (it was saved before they were "
                        "recorded); retrain it, or classify with model.classify() in Python")
    files = image_files(folder)
    images = load_images(files, settings.in_channels, settings.image_size)
    loader = DataLoader(TensorDataset(images), batch_size=batch_size)
    batches = trainer.predict(model, dataloaders=loader)
    probs = torch.cat([batch.float().cpu() for batch in batches])
    return FolderPredictions([path.relative_to(folder) for path in files], probs,
                             list(settings.class_names))


def write_predictions(predictions: FolderPredictions, path: Path, top_k: int) -> Path:
    """predictions.csv: file, predicted class, its probability, and the top k as text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(top_k, len(predictions.classes))
    values, indices = predictions.probs.topk(k, dim=1)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "predicted_class", "probability", f"top_{k}"])
        for name, top_values, top_indices in zip(predictions.files, values.tolist(),
                                                 indices.tolist(), strict=True):
            ranked = "; ".join(f"{predictions.classes[i]} {p:.4f}"
                               for p, i in zip(top_values, top_indices, strict=True))
            writer.writerow([name.as_posix(), predictions.classes[top_indices[0]],
                             f"{top_values[0]:.6f}", ranked])
    return path
