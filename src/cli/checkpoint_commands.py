"""Lightning's subcommands on a trained checkpoint: validate, test, predict.

    python -m experiments.cifar_resnet18 test --ckpt_path runs/.../best-epoch029.ckpt
    python -m experiments.cifar_resnet18 validate --ckpt_path CKPT
    python -m experiments.cifar_resnet18 predict --ckpt_path CKPT --data.predict_dir DIR

The model comes from the checkpoint alone (its recorded settings and weights, read
weights-only). validate and test rebuild the data the checkpoint was trained on from the
data settings it saved; `--data.*` flags change them (a different split or other
statistics are refused). predict needs no training data: the checkpoint's recorded image
size, input scaling and class names are enough to classify a folder of images.
"""

from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from src.cli.boundary import parse_in_one_line
from src.cli.evaluate import check_fits, saved_data_settings, selection_note
from src.core.errors import ConfigError, DataError
from src.datamodules.base import ImageDataModule
from src.datamodules.registry import dataset_name_in_checkpoint
from src.evaluation.predict import predict_folder, write_predictions
from src.modules import ImageClassifier
from src.runs.checkpoints import read_checkpoint
from src.runs.preflight import check_accelerator, default_precision

CHECKPOINT_COMMANDS = ("validate", "test", "predict")


def build_parser(command: str, datamodule_class: type[ImageDataModule],
                 program: str) -> ArgumentParser:
    parser = ArgumentParser(prog=f"{program} {command}", exit_on_error=False,
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--ckpt_path", type=str, required=True,
                        help="the checkpoint (.ckpt) to use, e.g. <run>/checkpoints/best-*.ckpt")
    parser.add_argument("--trainer.accelerator", type=str, default="auto",
                        help="cpu, gpu, ... or auto")
    parser.add_argument("--trainer.precision", type=str | None, default=None,
                        help="default bf16-mixed on GPUs that support it, else 32-true")
    parser.add_argument("--trainer.enable_progress_bar", type=bool, default=True)
    if command == "predict":
        parser.add_argument("--data.predict_dir", type=str, required=True,
                            help="folder of images to classify (subfolders included)")
        parser.add_argument("--data.batch_size", type=int, default=256)
        parser.add_argument("--top_k", type=int, default=3,
                            help="classes listed per image, most likely first")
        parser.add_argument("--out_dir", type=str | None, default=None,
                            help="where predictions.csv goes; default <run>/predict")
    else:
        parser.add_class_arguments(datamodule_class, "data")
    return parser


def parse(parser: ArgumentParser, argv: list[str], defaults: dict[str, Any] | None = None,
          ) -> Namespace:
    if defaults:
        parser.set_defaults(defaults)
    return parse_in_one_line(parser, argv)


def checkpoint_path_in(argv: list[str]) -> str | None:
    """--ckpt_path's value, read before the full parse (its data settings are defaults)."""
    for index, arg in enumerate(argv):
        if arg == "--ckpt_path" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
    return None


def run_dir_of(checkpoint_path: str) -> Path:
    folder = Path(checkpoint_path).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def make_trainer(config: Namespace) -> L.Trainer:
    accelerator = config.trainer.accelerator
    precision = config.trainer.precision or default_precision(accelerator)
    check_accelerator(accelerator, precision)
    return L.Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False,
                     enable_checkpointing=False, enable_model_summary=False,
                     enable_progress_bar=config.trainer.enable_progress_bar)


def run_checkpoint_command(command: str, datamodule_class: type[ImageDataModule],
                           argv: list[str], program: str) -> dict[str, float] | Path:
    """validate/test: the metrics, after printing one line; predict: the CSV's path."""
    parser = build_parser(command, datamodule_class, program)
    path = checkpoint_path_in(argv)
    if path is None:  # let the parser say it, in its one line
        parse(parser, argv)
    checkpoint = read_checkpoint(path)
    model = ImageClassifier.from_checkpoint(checkpoint, path)
    if command == "predict":
        config = parse(parser, argv)
        if config.top_k < 1 or config.data.batch_size < 1:
            raise ConfigError("--top_k and --data.batch_size must be at least 1")
        predictions = predict_folder(model, Path(config.data.predict_dir),
                                     make_trainer(config), config.data.batch_size)
        out_dir = Path(config.out_dir) if config.out_dir else run_dir_of(path) / "predict"
        csv_path = write_predictions(predictions, out_dir / "predictions.csv", config.top_k)
        print(f"Predictions for {len(predictions.files)} images: {csv_path}", flush=True)
        return csv_path
    trained_on = dataset_name_in_checkpoint(checkpoint)
    if trained_on is not None and datamodule_class.name != trained_on:
        raise DataError(f"{path} was trained on {trained_on}, not {datamodule_class.name}: use "
                        f"the entry point of its recipe")
    defaults = {key: value for key, value in saved_data_settings(checkpoint).items()
                if key != "dataset"}
    config = parse(parser, argv, defaults)
    datamodule = datamodule_class(**config.data.as_dict())
    datamodule.prepare_data()
    datamodule.setup("validate" if command == "validate" else "test")
    state = checkpoint.get(type(datamodule).__qualname__)
    if state is not None:  # refuses a different split or different statistics
        try:
            datamodule.load_state_dict(state)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
    check_fits(model, datamodule, path)
    trainer = make_trainer(config)
    run = trainer.validate if command == "validate" else trainer.test
    results = run(model, datamodule=datamodule, verbose=False)[0]
    stage = "val" if command == "validate" else "test"
    name = "Validation" if command == "validate" else "Test"
    print(f"{name} accuracy: {100 * results[f'{stage}/acc']:.2f}% ({stage} loss "
          f"{results[f'{stage}/loss']:.4f}; checkpoint {path}, {selection_note(checkpoint)})",
          flush=True)
    if f"{stage}/acc_flip_tta" in results:
        print(f"{name} accuracy with flip TTA: {100 * results[f'{stage}/acc_flip_tta']:.2f}%",
              flush=True)
    return results
