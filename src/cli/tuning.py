"""Learning-rate and batch-size finders (Lightning's `Tuner`), selected by `--tune.*` flags.

    python -m experiments.cifar_mlp --tune.lr_find true                  # find, print, stop
    python -m experiments.cifar_mlp --tune.lr_find true --tune.apply true  # ... then train
    python -m experiments.cifar_mlp --tune.batch_size_find true --tune.apply true

The batch size is searched first, so the learning-rate range test runs at the batch size
that training will use. Found values are printed in one line each and written to
`<run>/tuned.yaml`, a config layer for `--config`. With `--tune.apply true` the run trains
with them and its `config.yaml` records them (with the finders switched off), so the saved
config reproduces the run; without it nothing is trained.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.tuner import Tuner

from src.core.errors import ConfigError, check_range, lookup
from src.reporting.plots import plot_lr_curve
from src.reporting.tables import write_csv

BATCH_SIZE_MODES = ("power", "binsearch")
LR_FINDER_BETA = 0.98  # smoothing of the range test's loss (Lightning's _LRCallback default)


@dataclass
class TuneSettings:
    """Learning-rate and batch-size finders, run before training.

    Args:
        lr_find: run the learning-rate range test: the LR grows exponentially from min_lr
            to max_lr over lr_find_steps training steps; the suggestion is the LR where
            the smoothed loss falls fastest per decade. It becomes model.lr (the peak LR
            of onecycle).
        batch_size_find: find the largest training batch size (a power of two) that runs
            without running out of memory, up to max_batch_size and the training-set size.
        apply: train with the found values afterwards; false prints them and stops.
        min_lr: first learning rate of the range test.
        max_lr: last learning rate of the range test.
        lr_find_steps: training steps of the range test.
        max_batch_size: largest batch size the batch-size search tries (on a CPU nothing
            runs out of memory, so this bounds the search).
        batch_size_mode: "power" (keep doubling) or "binsearch" (then bisect after an
            out-of-memory error).
    """

    lr_find: bool = False
    batch_size_find: bool = False
    apply: bool = False
    min_lr: float = 1e-6
    max_lr: float = 1.0
    lr_find_steps: int = 100
    max_batch_size: int = 8192
    batch_size_mode: str = "power"

    def __post_init__(self) -> None:
        check_range("tune.min_lr", self.min_lr, 0.0, low_inclusive=False)
        check_range("tune.max_lr", self.max_lr, self.min_lr, low_inclusive=False)
        check_range("tune.lr_find_steps", self.lr_find_steps, 13)  # the suggestion skips 11
        check_range("tune.max_batch_size", self.max_batch_size, 2)
        lookup({mode: mode for mode in BATCH_SIZE_MODES}, self.batch_size_mode,
               "batch-size search mode")


def add_tuning_arguments(parser: LightningArgumentParser) -> None:
    parser.add_class_arguments(TuneSettings, "tune")


def tune(cli: LightningCLI) -> bool:
    """Run the requested finders; return whether training should follow."""
    settings: TuneSettings = cli.config_init["tune"]
    if not (settings.lr_find or settings.batch_size_find):
        return True
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    if trainer.world_size > 1:
        raise ConfigError("the finders run on one device; run --tune.* without multiple "
                          "devices, then train on several with the values found")
    if trainer.fast_dev_run:
        raise ConfigError("the finders do not run with --trainer.fast_dev_run")
    found: dict[str, Any] = {}
    callbacks = trainer.callbacks
    # config.yaml must hold the values training used, so it is written at the real fit,
    # not at the finders' own short fits.
    trainer.callbacks = [cb for cb in callbacks if not isinstance(cb, SaveConfigCallback)]
    # The finders step one optimizer through many short trials, more steps than a
    # schedule sized for a short run allows (onecycle then fails), and the LR range test
    # replaces the schedule by its own ramp anyway; so build no schedule while they run.
    # (Building onecycle would also change Adam's beta1 / SGD's momentum.)
    scheduler, model.hparams.scheduler = model.hparams.scheduler, "constant"
    try:
        if settings.batch_size_find:
            found["data.batch_size"] = find_batch_size(trainer, model, datamodule, settings)
        if settings.lr_find:
            found["model.lr"] = find_lr(trainer, model, datamodule, settings)
    finally:
        trainer.callbacks = callbacks
        model.hparams.scheduler = scheduler
    run_dir = Path(trainer.log_dir or trainer.default_root_dir)
    tuned_path = write_tuned_config(found, run_dir / "tuned.yaml")
    if not settings.apply:
        print(f"Not trained: add --tune.apply true to train with the values found, or use "
              f"--config {tuned_path}", flush=True)
        return False
    for key, value in found.items():
        cli.config[key] = value
    cli.config["tune.lr_find"] = cli.config["tune.batch_size_find"] = False
    applied = " ".join(f"--{key} {value}" for key, value in found.items())
    print(f"Training with {applied} (recorded in config.yaml)", flush=True)
    return True


def find_batch_size(trainer: Trainer, model: LightningModule,
                    datamodule: LightningDataModule, settings: TuneSettings) -> int:
    # Our loaders have no `dataset`, so Lightning cannot see the training-set size; cap
    # the search there: a batch larger than the training set is the same full batch.
    datamodule.prepare_data()
    datamodule.setup("fit")
    train_size = len(datamodule.train_set.labels)
    cap = min(settings.max_batch_size, 2 ** int(math.log2(train_size)))
    # Lightning reads and writes the size through datamodule.hparams.batch_size, which
    # train_dataloader() reads on every call.
    size = Tuner(trainer).scale_batch_size(
        model, datamodule=datamodule, mode=settings.batch_size_mode, max_val=cap,
        batch_arg_name="batch_size")
    if trainer.is_global_zero:
        # Lightning stops doubling at the cap without running it; elsewhere the size ran.
        how = "the cap" if size == cap else "the largest that ran"
        print(f"Batch size found: {size} ({how}; {settings.batch_size_mode} search from 2, "
              f"capped at {cap} = min(--tune.max_batch_size, training-set size "
              f"{train_size}))", flush=True)
    return int(size)


def debias_lr_finder_losses(losses: list[float], beta: float = LR_FINDER_BETA) -> list[float]:
    """Undo the off-by-one in Lightning's bias correction of the range test's loss.

    Lightning keeps a running average a_k = beta * a_(k-1) + (1 - beta) * loss_k and
    divides it by 1 - beta**(k+1), reading k from `trainer.global_step` after the
    optimizer step, when it already counts the current step; the unbiased estimate
    divides by 1 - beta**k. The difference halves the first values, so the recorded
    curve climbs over its first ~50 steps and its steepest descent (the suggestion)
    lands on the end of that climb, at far too small a rate (Lightning issue #14167).
    """
    return [loss * (1 - beta ** (k + 1)) / (1 - beta ** k)
            for k, loss in enumerate(losses, start=1)]


def steepest_descent(lrs: list[float], losses: list[float], skip_begin: int = 10,
                     skip_end: int = 1) -> float | None:
    """The learning rate where the loss falls fastest per decade of learning rate.

    Lightning's `suggestion()` takes the slope against the learning rate itself; on an
    exponential sweep that divides by tiny rates, so noise in the flat start wins (on
    CIFAR-10 it suggested 4.6e-6 for a curve that falls from 1e-5 to 1e-2). Against
    log(lr), as in fastai's "steep" rule, each decade counts the same. The first and
    last points are skipped, as Lightning does.
    """
    lr = torch.tensor(lrs[skip_begin:len(lrs) - skip_end], dtype=torch.float64)
    loss = torch.tensor(losses[skip_begin:len(losses) - skip_end], dtype=torch.float64)
    finite = torch.isfinite(loss)
    lr, loss = lr[finite], loss[finite]
    if len(loss) < 2:
        return None
    slope = torch.gradient(loss, spacing=(lr.log(),))[0]
    return float(lr[slope.argmin()])


def find_lr(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule,
            settings: TuneSettings) -> float:
    max_epochs = trainer.fit_loop.max_epochs
    # The test counts steps: a short epoch must not end it early (one step per epoch is
    # the worst case).
    if max_epochs != -1:
        trainer.fit_loop.max_epochs = max(max_epochs, settings.lr_find_steps)
    try:
        finder = Tuner(trainer).lr_find(
            model, datamodule=datamodule, min_lr=settings.min_lr, max_lr=settings.max_lr,
            num_training=settings.lr_find_steps, update_attr=False)
    finally:
        trainer.fit_loop.max_epochs = max_epochs
    lrs = finder.results["lr"]
    losses = debias_lr_finder_losses(finder.results["loss"])
    suggestion = steepest_descent(lrs, losses)
    if suggestion is None:
        raise ConfigError(f"the LR range test gave no suggestion: only {len(lrs)} steps "
                          f"before the loss diverged; raise --tune.lr_find_steps or lower "
                          f"--tune.max_lr")
    model.hparams.lr = suggestion
    if trainer.is_global_zero:
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        plot_path = plot_lr_curve(lrs, losses, suggestion, run_dir / "lr_find.png")
        write_csv(run_dir / "lr_find.csv", ["lr", "smoothed_loss"], list(zip(lrs, losses,
                                                                              strict=True)))
        print(f"Suggested learning rate: {suggestion:.3g} (range test {settings.min_lr:g} to "
              f"{settings.max_lr:g} over {len(lrs)} steps; curve: {plot_path})", flush=True)
    return float(suggestion)


def write_tuned_config(found: dict[str, Any], path: Path) -> Path:
    """Write the found values as a config layer: `--config <path>`."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in found.items():
        section, name = key.split(".", 1)
        nested.setdefault(section, {})[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Found by --tune.* (src/cli/tuning.py); use with --config.\n"
                    + yaml.safe_dump(nested, sort_keys=True))
    return path
