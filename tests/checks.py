"""Checks of a finished run against computations done here, not by the code under test:
the test images read with PIL, scaled by hand, classified, and scored with torch's
cross-entropy."""

import copy
import csv
import re
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from src.cli import experiment
from src.modules import ImageClassifier


def read_image_folder(root: Path, split: str = "test",
                      classes: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, C, H, W] and labels [N] of root/split/<class>/*.png, in the order
    the test loader goes through them (classes sorted, files sorted); `classes`: only
    these, labelled 0, 1, ... in the order given."""
    split_dir = Path(root) / split
    names = classes or sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    images, labels = [], []
    for label, name in enumerate(names):
        for path in sorted((split_dir / name).glob("*.png")):
            pixels = np.asarray(Image.open(path))
            images.append(torch.from_numpy(pixels.reshape(*pixels.shape[:2], -1).copy()))
            labels.append(label)
    return torch.stack(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


@torch.no_grad()
def evaluate_by_hand(model: ImageClassifier, images: torch.Tensor, labels: torch.Tensor,
                     precision: str = "32-true",
                     mirrored: bool = False) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` in eval mode on uint8 `images`, scaled
    by the input_mean / input_std it recorded when it was fitted. `precision`: the
    trainer's, so that the arithmetic is the run's (bf16 weights, or bf16 autocast).
    `mirrored`: classify each image by its mean softmax with its mirror image (flip TTA);
    the loss is then that of the mean probabilities."""
    shape = (1, -1, 1, 1)
    mean = torch.tensor(model.hparams.input_mean).view(shape)
    std = torch.tensor(model.hparams.input_std).view(shape)
    inputs = (images.float() / 255 - mean) / std
    model = copy.deepcopy(model).eval().cpu()  # the caller's module stays as it was
    if precision == "bf16-true":
        model, inputs = model.to(torch.bfloat16), inputs.to(torch.bfloat16)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-mixed"
                else nullcontext())
    with autocast:
        logits = model(inputs).float()
        mirror_logits = model(inputs.flip(-1)).float() if mirrored else None
    if mirrored:
        probs = (logits.softmax(dim=-1) + mirror_logits.softmax(dim=-1)) / 2
        logits = probs.log()  # log-probabilities: cross_entropy takes them as logits
    accuracy = (logits.argmax(dim=-1) == labels).float().mean().item()
    return accuracy, F.cross_entropy(logits, labels).item()


def best_checkpoint(run_dir: Path) -> Path:
    """The one best-epochNNN.ckpt of a run directory."""
    (path,) = (Path(run_dir) / "checkpoints").glob("best-*.ckpt")
    return path


def checkpoint_best_score(path: Path) -> float:
    """The best val/acc that the ModelCheckpoint callback recorded in checkpoint `path`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    (score,) = [state["best_model_score"] for key, state in saved["callbacks"].items()
                if key.startswith("ModelCheckpoint")]
    return float(score)


def logged_values(run_dir: Path, metric: str) -> list[float]:
    """Every value of `metric` in the metrics.csv under `run_dir`, in logged order."""
    (path,) = Path(run_dir).rglob("metrics.csv")
    with open(path, newline="") as file:
        return [float(row[metric]) for row in csv.DictReader(file) if row.get(metric)]


def printed_checkpoint(output: str) -> Path:
    """The checkpoint named by the entry point's "Test accuracy: ..." line."""
    line = next(x for x in output.splitlines() if x.startswith("Test accuracy:"))
    match = re.search(r"best checkpoint (\S+\.ckpt) \(val/acc ", line)
    assert match, line
    return Path(match.group(1))


def assert_results_are_those_of(results: dict[str, float], model: ImageClassifier,
                                data_dir: Path, precision: str = "32-true",
                                classes: list[str] | None = None) -> float:
    """The run's test/acc and test/loss (and test/acc_flip_tta, if it has one) are those
    of `model` on the test images of `data_dir`, computed here. Returns the accuracy."""
    images, labels = read_image_folder(data_dir, classes=classes)
    accuracy, loss = evaluate_by_hand(model, images, labels, precision)
    assert results["test/acc"] == pytest.approx(accuracy, abs=1e-6)
    tolerance = 1e-4 if precision == "32-true" else 2e-2  # bf16: 8 bits of mantissa
    assert results["test/loss"] == pytest.approx(loss, rel=tolerance)
    if "test/acc_flip_tta" in results:
        flip_accuracy, _ = evaluate_by_hand(model, images, labels, precision, mirrored=True)
        assert results["test/acc_flip_tta"] == pytest.approx(flip_accuracy, abs=1e-6)
    return accuracy


def assert_tested_checkpoint(results: dict[str, float], checkpoint: Path, data_dir: Path,
                             precision: str = "32-true",
                             classes: list[str] | None = None) -> float:
    """The run's test metrics are those of the weights in `checkpoint`. Returns the
    accuracy."""
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu",
                                                 weights_only=True)
    return assert_results_are_those_of(results, model, data_dir, precision, classes)


def record_runs(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record the ExperimentCLI of every run the entry points start: `cli.model` holds the
    weights that were tested where no checkpoint was selected (fast_dev_run)."""
    runs = []
    original = experiment.fit_and_test

    def recording(cli, **kwargs):
        runs.append(cli)
        return original(cli, **kwargs)

    monkeypatch.setattr(experiment, "fit_and_test", recording)
    return runs


def ctrl_c_when_starting(stopped_run: str, run_or_read_trial):
    """A stand-in for `run_or_read_trial` that raises Ctrl-C's KeyboardInterrupt when the
    run named `stopped_run` would start, and runs every other one."""
    def run(module, name, *args, **kwargs):
        if name == stopped_run:
            raise KeyboardInterrupt
        return run_or_read_trial(module, name, *args, **kwargs)
    return run
