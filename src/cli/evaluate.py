"""Evaluate trained checkpoints on the test split: accuracy, flip TTA, ensemble, confusion.

    python -m experiments.evaluate CKPT [CKPT ...] [--dataset cifar10|fashion_mnist]
        [--data.* ...] [--out_dir DIR] [--accelerator auto] [--precision 32-true]

Give the best-by-validation checkpoints (`<run>/checkpoints/best-*.ckpt`): nothing here
selects anything on the test split, it only measures. For each checkpoint: test accuracy,
and test accuracy with horizontal-flip test-time augmentation (the mean of the
probabilities of each image and of its mirror image), reported separately. With two or
more checkpoints, also their ensemble (the mean of their probabilities) and its gain
over each member. Writes into --out_dir (default: <run of the first checkpoint>/evaluation):
evaluation.md, evaluation.json and, per model (m1, m2, ..., ensemble), <name>_confusion.png,
<name>_confusion.csv and <name>_per_class.csv.

The data settings default to those saved in the first checkpoint (same data set, folder,
validation split and therefore the same normalization statistics); `--data.*` flags
override them, and a checkpoint trained on a different split or statistics is refused.
"""

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ActionConfigFile, ArgumentParser

from src.cli.boundary import parse_in_one_line, run_command
from src.cli.data_flags import add_data_arguments, build_datamodule
from src.core.errors import DataError
from src.datamodules.base import ImageDataModule
from src.datamodules.registry import dataset_name_in_checkpoint
from src.evaluation.predictions import (
    Predictions,
    accuracy,
    confusion_matrix,
    ensemble_probs,
    per_class_accuracy,
    predict_with_flip,
)
from src.modules import ImageClassifier
from src.reporting.class_report import write_class_report
from src.runs.checkpoints import read_checkpoint
from src.runs.preflight import default_precision


@dataclass
class ModelResult:
    name: str  # m1, m2, ... or "ensemble"
    checkpoint: str | None  # None for the ensemble
    selected_at: str  # e.g. "epoch 7, val/acc 0.5310": how the checkpoint was chosen
    accuracy: float
    tta_accuracy: float  # with horizontal-flip test-time augmentation
    predictions: Predictions


@dataclass
class Evaluation:
    dataset: str
    members: list[ModelResult]
    ensemble: ModelResult | None
    out_dir: Path


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m experiments.evaluate", exit_on_error=False,
                            description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("checkpoints", nargs="+", type=str,
                        help="checkpoint files (.ckpt) of ImageClassifier runs.")
    add_data_arguments(parser, default_dataset=None)
    parser.add_argument("--out_dir", type=str | None, default=None,
                        help="output folder; default <run of the first checkpoint>/evaluation.")
    parser.add_argument("--accelerator", type=str, default="auto",
                        help="cpu, gpu, ... or auto (the Trainer's accelerator).")
    parser.add_argument("--precision", type=str | None, default=None,
                        help="Trainer precision; default bf16-mixed on GPUs that support it, "
                             "else 32-true.")
    return parser


def saved_data_settings(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Parser defaults ("dataset", "data.<flag>") from the data settings a checkpoint saved."""
    defaults: dict[str, Any] = {}
    name = dataset_name_in_checkpoint(checkpoint)
    if name is not None:
        defaults["dataset"] = name
    known = inspect.signature(ImageDataModule.__init__).parameters
    for key, value in (checkpoint.get("datamodule_hyper_parameters") or {}).items():
        if key in known and key != "self":
            defaults[f"data.{key}"] = value
    return defaults


def selection_note(checkpoint: dict[str, Any]) -> str:
    """Epoch and validation score at which the checkpoint was saved, when recorded."""
    note = f"epoch {checkpoint.get('epoch', '?')}"
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and state.get("monitor"):
            score = state.get("current_score")
            if score is not None:
                return f"{note}, {state['monitor']} {float(score):.4f}"
    return note


def check_fits(model: ImageClassifier, datamodule: ImageDataModule, path: str) -> None:
    hp = model.hparams
    wanted = (hp.num_classes, hp.in_channels, hp.image_size)
    have = (datamodule.num_classes, datamodule.in_channels, datamodule.image_size)
    if wanted != have:
        raise DataError(f"checkpoint {path} expects (classes, channels, size) = {wanted} but "
                        f"the data give {have}; pass the --dataset and --data.data_dir it "
                        f"was trained on")


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def to_markdown(evaluation: Evaluation) -> str:
    first = evaluation.members[0].predictions
    rows = [*evaluation.members, *([evaluation.ensemble] if evaluation.ensemble else [])]
    lines = [
        f"# Evaluation: {evaluation.dataset} test split ({len(first.labels)} images)",
        "",
        "| model | checkpoint | selected at | test acc | with flip TTA | TTA gain (pp) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        checkpoint = f"`{row.checkpoint}`" if row.checkpoint else \
            f"mean of the probabilities of {len(evaluation.members)} models"
        lines.append(f"| {row.name} | {checkpoint} | {row.selected_at} | "
                     f"{_percent(row.accuracy)} | {_percent(row.tta_accuracy)} | "
                     f"{_points(row.tta_accuracy - row.accuracy)} |")
    if evaluation.ensemble is not None:
        ensemble = evaluation.ensemble
        gains = ", ".join(f"{m.name} {_points(ensemble.accuracy - m.accuracy)}"
                          for m in evaluation.members)
        tta_gains = ", ".join(f"{m.name} {_points(ensemble.tta_accuracy - m.tta_accuracy)}"
                              for m in evaluation.members)
        best = max(m.accuracy for m in evaluation.members)
        lines += ["", f"Ensemble gain over each member (test accuracy, percentage points): "
                      f"{gains}; over the best member {_points(ensemble.accuracy - best)}.",
                  f"With flip TTA on both sides: {tta_gains}."]
    lines += ["", "Confusion matrices and per-class accuracy (without TTA): "
                  "`<model>_confusion.png`, `<model>_confusion.csv`, `<model>_per_class.csv`."]
    return "\n".join(lines) + "\n"


def _result(name: str, checkpoint: str | None, selected_at: str,
            predictions: Predictions) -> ModelResult:
    return ModelResult(name=name, checkpoint=checkpoint, selected_at=selected_at,
                       accuracy=accuracy(predictions.probs, predictions.labels),
                       tta_accuracy=accuracy(predictions.tta_probs, predictions.labels),
                       predictions=predictions)


def evaluate(args: list[str] | None = None) -> Evaluation:
    parser = build_parser()
    paths = parse_in_one_line(parser, args).checkpoints
    checkpoints = [read_checkpoint(path) for path in paths]
    # Parse again with the first checkpoint's data settings as defaults under the flags.
    parser.set_defaults(saved_data_settings(checkpoints[0]))
    config = parse_in_one_line(parser, args)
    if config.dataset is None:
        raise DataError(f"{paths[0]} does not say which data set it was trained on; "
                        f"pass --dataset")
    datamodule = build_datamodule(config)
    datamodule.prepare_data()
    datamodule.setup("test")
    state_key = type(datamodule).__qualname__
    for path, checkpoint in zip(paths, checkpoints, strict=True):
        if state_key in checkpoint:  # refuses a different split or statistics
            try:
                datamodule.load_state_dict(checkpoint[state_key])
            except DataError as error:
                raise DataError(f"{path}: {error}") from None

    trainer = L.Trainer(
        accelerator=config.accelerator, devices=1, logger=False,
        precision=config.precision or default_precision(config.accelerator),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    members = []
    for index, (path, checkpoint) in enumerate(zip(paths, checkpoints, strict=True)):
        model = ImageClassifier.from_checkpoint(checkpoint, path)
        check_fits(model, datamodule, path)
        predictions = predict_with_flip(model, datamodule, trainer)
        members.append(_result(f"m{index + 1}", path, selection_note(checkpoint),
                               predictions))
    ensemble = None
    if len(members) > 1:
        labels = members[0].predictions.labels
        ensemble = _result("ensemble", None, "-", Predictions(
            probs=ensemble_probs([m.predictions.probs for m in members]),
            flipped_probs=ensemble_probs([m.predictions.flipped_probs for m in members]),
            labels=labels))

    first = Path(paths[0]).resolve().parent
    run_dir = first.parent if first.name == "checkpoints" else first
    out_dir = Path(config.out_dir) if config.out_dir else run_dir / "evaluation"
    evaluation = Evaluation(dataset=config.dataset, members=members, ensemble=ensemble,
                            out_dir=out_dir)
    for row in [*members, *([ensemble] if ensemble else [])]:
        probs, labels = row.predictions.probs, row.predictions.labels
        write_class_report(confusion_matrix(probs, labels), per_class_accuracy(probs, labels),
                           datamodule.classes, out_dir, row.name,
                           f"{row.name}: test accuracy {_percent(row.accuracy)}")
    markdown = to_markdown(evaluation)
    (out_dir / "evaluation.md").write_text(markdown)
    (out_dir / "evaluation.json").write_text(json.dumps({
        "dataset": config.dataset, "classes": datamodule.classes,
        "models": [{"name": row.name, "checkpoint": row.checkpoint,
                    "selected_at": row.selected_at, "test_acc": row.accuracy,
                    "test_acc_flip_tta": row.tta_accuracy}
                   for row in [*members, *([ensemble] if ensemble else [])]],
    }, indent=2))
    print(markdown)
    print(f"Wrote evaluation.md, evaluation.json and confusion matrices to {out_dir}",
          flush=True)
    return evaluation


def main(args: list[str] | None = None) -> Evaluation:
    return run_command(lambda: evaluate(args))


if __name__ == "__main__":
    main()
