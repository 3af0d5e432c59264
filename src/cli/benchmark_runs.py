"""The benchmark's measurements, one run each, built from the recipes by the entry points'
own parser (`build_recipe`): the benchmark's flags become the entry points' flags
(`--batch_size 64` -> `--data.batch_size 64`, `--device cuda:1` -> `--trainer.accelerator
gpu --trainer.devices [1]`), so a measured model is exactly what
`python -m experiments.<entry point> --config <recipe> <those flags>` would train.

Each function returns one `Measurement` (metric -> value) for the raw log.
"""

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from src.benchmark.classic_loop import ClassicData, ClassicRecipe, train_classic
from src.benchmark.interleave import Measurement
from src.benchmark.plain_loop import plain_loop_throughput
from src.benchmark.seed_baseline import seed_time_to_accuracy
from src.benchmark.timing import StepTimer, TimeToAccuracy
from src.callbacks.weight_averaging import build_weight_averaging
from src.cli.experiment import build_recipe
from src.core.errors import ConfigError, DataError
from src.datamodules.base import ImageDataModule
from src.datamodules.cifar10 import CIFAR10DataModule
from src.datamodules.synthetic import SyntheticImageDataModule
from src.modules.classifier import ImageClassifier
from src.modules.networks import NetworkShape
from src.sweeps.run_metrics import find_metrics_file, read_traces
from src.sweeps.trial import check_first_run_started, run_trial

# Model -> its entry point, whose recipe is the base every other recipe of it layers on
# (as `python -m experiments.cifar_mlp --config experiments/configs/cifar_mlp_fast52.yaml`).
ENTRY_POINTS = {"resnet18": "cifar_resnet18", "mlp": "cifar_mlp"}
# A measured run writes nothing and shows nothing: no logger, checkpoint or progress bar.
QUIET = ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.num_sanity_val_steps", "0"]

Parts = tuple[ImageClassifier, ImageDataModule, Any]  # model, datamodule, parsed settings


def model_flags(args: argparse.Namespace, model: str) -> list[str]:
    """The benchmark's model and data choices as entry-point flags."""
    flags = []
    if args.batch_size is not None:
        flags += ["--data.batch_size", str(args.batch_size)]
    if model == "resnet18" and args.resnet_widths:
        flags += ["--model.resnet_widths", json.dumps(args.resnet_widths)]
    if model == "mlp" and args.mlp_widths:
        flags += ["--model.hidden_widths", json.dumps(args.mlp_widths)]
    if args.channels_last:
        flags += ["--model.channels_last", "true"]
    if args.compile:
        flags += ["--model.compile", "true"]
    return flags


def device_flags(args: argparse.Namespace) -> list[str]:
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    return ["--trainer.accelerator", "gpu" if on_gpu else "cpu",
            "--trainer.devices", f"[{device.index or 0}]" if on_gpu else "1",
            "--trainer.precision", args.precision]


def real_data_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--data.data_dir", args.data_dir, "--data.download", "false"]
    if args.subset_per_class:
        flags += ["--data.subset_per_class", str(args.subset_per_class)]
    return flags


def epoch_flags(args: argparse.Namespace) -> list[str]:
    return [] if args.max_epochs is None else ["--trainer.max_epochs", str(args.max_epochs)]


def recipe_flags(args: argparse.Namespace, model: str, recipe: str | None) -> list[str]:
    """`--config <recipe>` (none: the entry point's own recipe), then the benchmark's
    choices, which override the recipe's."""
    layered = ["--config", str(args.recipes.config(recipe))] if recipe else []
    return [*layered, *model_flags(args, model), *device_flags(args)]


def build(args: argparse.Namespace, model: str, datamodule_class: type[ImageDataModule],
          recipe: str | None, flags: list[str]) -> Parts:
    base = args.recipes.config(ENTRY_POINTS[model])
    return build_recipe(datamodule_class, base, [*recipe_flags(args, model, recipe), *flags])


def make_trainer(config: Any, callbacks: list[L.Callback]) -> L.Trainer:
    """A Trainer with the parsed `--trainer.*` settings and `callbacks`."""
    return L.Trainer(**{**config.trainer.as_dict(), "callbacks": callbacks})


def set_up_real_data(datamodule: ImageDataModule) -> None:
    """Read the data (decoded once, then cached) and split them: before any clock starts."""
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
    except DataError as error:  # the benchmark has no --data.download: downloads are off
        raise DataError(str(error).replace(" (--data.download false)", "")) from None


def real_data(args: argparse.Namespace, model: str, recipe: str | None) -> ImageDataModule:
    """The real CIFAR-10 as `recipe` splits it, set up."""
    _, datamodule, _ = build(args, model, CIFAR10DataModule, recipe, real_data_flags(args))
    set_up_real_data(datamodule)
    return datamodule


def real_data_batch_size(args: argparse.Namespace, model: str, recipe: str) -> int:
    """The batch size `recipe` trains with on the real data, under the benchmark's flags."""
    _, datamodule, _ = build(args, model, CIFAR10DataModule, recipe, real_data_flags(args))
    return datamodule.hparams.batch_size


# -- throughput and overhead: synthetic images of CIFAR's shape --------------------------

def throughput_parts(args: argparse.Namespace, model: str, pipeline: str) -> Parts:
    """The entry point's recipe for `model` on synthetic images, through `pipeline`, for
    `--warmup_steps` + `--steps` training steps without validation."""
    workers = [] if args.num_workers is None else ["--data.num_workers", str(args.num_workers)]
    return build(args, model, SyntheticImageDataModule, None, [
        "--data.num_train", str(args.train_images), "--data.num_test", "10",
        "--data.val_fraction", "null", "--data.pipeline", pipeline, *workers, *QUIET,
        "--trainer.max_steps", str(args.warmup_steps + args.steps),
        "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0",
        "--seed_everything", "0"])


def lightning_throughput(args: argparse.Namespace, parts: Parts) -> Measurement:
    """Training images/s of a Lightning fit over `--steps` steps after the warm-up steps.
    The model keeps training from one repeat to the next (its speed does not depend on
    its weights); the optimizer and schedule start afresh in every fit."""
    model, datamodule, config = parts
    timer = StepTimer(args.warmup_steps)
    make_trainer(config, [timer]).fit(model, datamodule=datamodule)
    return {"images_per_s": timer.images_per_second}


def plain_throughput(args: argparse.Namespace, parts: Parts) -> Measurement:
    model, datamodule, _ = parts
    return {"images_per_s": plain_loop_throughput(
        model, datamodule, torch.device(args.device), args.precision, args.warmup_steps,
        args.steps)}


# -- time to accuracy: real data ----------------------------------------------------------

def time_to_accuracy(args: argparse.Namespace, model: str, recipe: str, target: float,
                     seed: int) -> Measurement:
    """Train `recipe` with `--seed_everything seed` until the test accuracy reaches
    `target` (checked after every epoch, off the clock) or its last epoch."""
    module, datamodule, config = build(args, model, CIFAR10DataModule, recipe, [
        *real_data_flags(args), *epoch_flags(args), *QUIET, "--seed_everything", str(seed)])
    set_up_real_data(datamodule)
    # A recipe with flip TTA (model.flip_tta) gets that accuracy reported beside the plain one.
    clock = TimeToAccuracy(target, datamodule.test_set.images, datamodule.test_set.labels,
                           flip_tta=module.hparams.flip_tta)
    averaging = build_weight_averaging(ema_decay=config.ema.decay,
                                       swa_epoch_start=config.swa.epoch_start,
                                       swa_update_bn=config.swa.update_bn)
    make_trainer(config, [*averaging, clock]).fit(module, datamodule=datamodule)
    return clock_measurement(clock.reached or clock.history[-1], clock.reached is not None,
                             clock.flip_tta_accuracy)


def clock_measurement(end: tuple[int, float, float], reached: bool,
                      flip_tta: dict[int, float] | None = None) -> Measurement:
    epoch, seconds, accuracy = end
    return {"time_s": seconds, "accuracy": accuracy, "epochs": float(epoch),
            "reached": float(reached), "accuracy_flip_tta": (flip_tta or {}).get(epoch)}


def seed_baseline(args: argparse.Namespace, datamodule: ImageDataModule, target: float,
                  seed: int) -> Measurement:
    """The seed-style baseline on the training split of `datamodule` (set up), on the CPU."""
    history = seed_time_to_accuracy(datamodule, target, args.seed_max_epochs, seed=seed)
    return clock_measurement(history[-1], history[-1][2] >= target)


# -- whole runs: the entry point, and the classic loop ---------------------------------------

def entry_point_run(args: argparse.Namespace, model: str, recipe: str, seed: int,
                    run_dir: Path) -> Measurement:
    """`python -m experiments.<entry point> --config <recipe>` with the benchmark's flags
    and `--seed_everything seed`, in this process, into `run_dir`: fit, then the test of
    the best checkpoint by validation (the final weights without a validation set).
    time_s: its training epochs (time/train_epoch_s, validation excluded); run_s: the
    whole run (parsing, data, fit, test, its records and plots). A `run_dir` already there
    is a run stopped part-way (the benchmark refuses an --out_dir holding runs unless
    --resume): it is measured again from the start, since a time needs one unbroken run."""
    if run_dir.exists():
        print(f"{run_dir}: stopped part-way by an earlier run of the benchmark; measuring it "
              f"again from the start")
        shutil.rmtree(run_dir)
    flags = [*recipe_flags(args, model, recipe), *real_data_flags(args), *epoch_flags(args),
             "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false"]
    result = run_trial(args.recipes.module(ENTRY_POINTS[model]), run_dir.name, {}, flags,
                       run_dir, isolation="inprocess")
    check_first_run_started(result)
    if result.exit_code != 0 or result.metrics is None or "test/acc" not in result.metrics.final:
        raise RuntimeError(f"the entry-point run in {run_dir} failed: {result.error}; "
                           f"log: {run_dir / 'output.log'}")
    epoch_times = read_traces(find_metrics_file(run_dir))["time/train_epoch_s"]
    final = result.metrics.final
    return {"time_s": sum(point.value for point in epoch_times),
            "accuracy": final["test/acc"], "accuracy_flip_tta": final.get("test/acc_flip_tta"),
            "best_val_accuracy": result.best_val_acc, "run_s": result.seconds}


def classic_run(args: argparse.Namespace, model: str, recipe: str, seed: int) -> Measurement:
    """The same recipe (parsed with the same flags as `entry_point_run`'s) trained by the
    classic loop: torchvision-style Dataset of PIL images, per-image transforms in
    `--loop_workers` DataLoader workers, plain PyTorch. time_s: its training epochs
    (validation excluded); run_s: the whole run (parsing, data, training, test)."""
    start = time.perf_counter()
    module, datamodule, config = build(args, model, CIFAR10DataModule, recipe, [
        *real_data_flags(args), *epoch_flags(args), "--seed_everything", str(seed)])
    if not datamodule.has_validation:
        raise ConfigError(f"{recipe} has no validation split (data.val_fraction null): the "
                          f"classic loop keeps the best weights by validation accuracy")
    set_up_real_data(datamodule)
    hp = datamodule.hparams
    recipe_settings = ClassicRecipe(
        network=module.network_settings, loss=module.loss_settings,
        optimizer=module.optimizer_settings, schedule=module.schedule_settings,
        shape=NetworkShape(datamodule.num_classes, datamodule.in_channels,
                           datamodule.image_size),
        augmentations=datamodule.augmentations, epochs=config.trainer.max_epochs,
        batch_size=hp.batch_size, eval_batch_size=hp.eval_batch_size)
    data = ClassicData(datamodule.train_set, datamodule.val_set, datamodule.test_set,
                       *datamodule.normalization_constants())
    result = train_classic(recipe_settings, data, seed, torch.device(args.device),
                           args.precision, args.loop_workers)
    return {"time_s": result.train_s, "accuracy": result.test_acc,
            "best_val_accuracy": result.best_val_acc, "run_s": time.perf_counter() - start}
