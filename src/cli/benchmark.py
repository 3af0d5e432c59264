"""Training-speed benchmark, one process, one report.

    python -m experiments.benchmark [--device cuda] [--steps 50] [--models resnet18 mlp]
    python -m experiments.benchmark --time-to-52 --data-dir $CIFAR10_DIR   # real data
    python -m experiments.benchmark --time-to-94 --seeds 3 --data-dir $CIFAR10_DIR  # GPU

Sections (rows of one table, printed, and written to <out>/benchmark.csv and .md):
- throughput: training images/s of each recipe's model (ResNet18, MLP) on the fast path
  and on the classic path (same model, batch size, precision, augmentations), on
  synthetic uint8 images of CIFAR's shape; the epoch time of 50,000 images follows
  from it; ratio = fast / classic.
- overhead: the same module, optimizer and fast-path batches in a plain PyTorch loop
  versus Lightning; ratio = Lightning's extra time per step (percent).
- time to 52% (--time-to-52, real CIFAR-10): the seed-style baseline (per-image Dataset,
  MLP 3072-100-100-10 + BatchNorm, Adam, StepLR, batch 32) against our MLP recipe
  (--recipe-52, default cifar_mlp_fast52.yaml); ratio = speed-up (below 1: slower).
  Test accuracy is checked after every epoch, off the clock; the recipe's own validation
  stays on it (it is part of the recipe).
- time to 94% (--time-to-94, GPU only): the fast ResNet18 recipe, one row per seed and
  their mean and spread; the test accuracy with flip TTA in its own column (the target
  is judged without it).
Timings are measured, never asserted; the recipes' settings come from
experiments/configs/*.yaml.
"""

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from src.benchmark.plain_loop import PLAIN_LOOP_PRECISIONS, plain_loop_throughput
from src.benchmark.report import markdown_table, write_report
from src.benchmark.seed_baseline import SEED_BATCH_SIZE, SEED_WIDTHS, seed_time_to_accuracy
from src.benchmark.timing import StepTimer, TimeToAccuracy
from src.callbacks.weight_averaging import build_weight_averaging
from src.cli.recipes import Recipes
from src.core.errors import ConfigError, DataError, UserInputError, check_range
from src.datamodules.base import ImageDataModule
from src.datamodules.cifar10 import CIFAR10DataModule
from src.datamodules.synthetic import SyntheticImageDataModule
from src.modules.classifier import ImageClassifier
from src.runs.preflight import check_accelerator, default_precision

MODEL_RECIPES = {"resnet18": "cifar_resnet18.yaml", "mlp": "cifar_mlp.yaml"}
EPOCH_IMAGES = 50_000


def load_recipe(recipes: Recipes, config_name: str) -> dict[str, Any]:
    return yaml.safe_load(recipes.config(config_name).read_text())


def build_model(recipe: dict[str, Any], datamodule: ImageDataModule,
                args: argparse.Namespace) -> ImageClassifier:
    settings = dict(recipe.get("model") or {})
    if args.resnet_widths and settings.get("arch") == "resnet18":
        settings["resnet_widths"] = args.resnet_widths
    if args.mlp_widths and settings.get("arch") == "mlp":
        settings["hidden_widths"] = args.mlp_widths
    if args.channels_last:
        settings["channels_last"] = True
    if args.compile:
        settings["compile"] = True
    return ImageClassifier(**settings, num_classes=datamodule.num_classes,
                           in_channels=datamodule.in_channels, image_size=datamodule.image_size)


def data_settings(recipe: dict[str, Any], args: argparse.Namespace, **changes: Any) -> dict:
    settings = {**(recipe.get("data") or {}), **changes}
    if args.batch_size is not None:
        settings["batch_size"] = args.batch_size
    return settings


def trainer_for(args: argparse.Namespace, callbacks: list[L.Callback], **kwargs: Any) -> L.Trainer:
    device = torch.device(args.device)
    return L.Trainer(accelerator="gpu" if device.type == "cuda" else device.type,
                     devices=[device.index or 0] if device.type == "cuda" else 1,
                     precision=args.precision, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, callbacks=callbacks, **kwargs)


def synthetic_data(recipe: dict[str, Any], args: argparse.Namespace,
                   pipeline: str) -> SyntheticImageDataModule:
    return SyntheticImageDataModule(
        num_train=args.train_images, num_test=10, **data_settings(
            recipe, args, val_fraction=None, pipeline=pipeline, num_workers=args.num_workers))


def base_row(section: str, model: str, setup: str, args: argparse.Namespace,
             batch_size: int) -> dict[str, Any]:
    return {"section": section, "model": model, "setup": setup, "device": args.device,
            "precision": args.precision, "batch_size": batch_size}


def lightning_throughput(recipe: dict[str, Any], args: argparse.Namespace,
                         pipeline: str) -> tuple[float, int]:
    L.seed_everything(0, verbose=False)
    datamodule = synthetic_data(recipe, args, pipeline)
    model = build_model(recipe, datamodule, args)
    timer = StepTimer(args.warmup_steps)
    trainer = trainer_for(args, [timer], max_steps=args.warmup_steps + args.steps,
                          max_epochs=-1, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    return timer.images_per_second, datamodule.hparams.batch_size


def throughput_rows(args: argparse.Namespace,
                    measured: dict[tuple[str, str], tuple[float, int]]) -> list[dict[str, Any]]:
    """Rows of the throughput section; `measured[(model, pipeline)]` keeps each result."""
    rows = []
    for name in args.models:
        recipe = load_recipe(args.recipes, MODEL_RECIPES[name])
        by_pipeline = {}
        for pipeline in args.pipelines:
            speed, batch_size = lightning_throughput(recipe, args, pipeline)
            measured[name, pipeline] = speed, batch_size
            workers = f", {args.num_workers} workers" if pipeline == "classic" and \
                args.num_workers is not None else ""
            by_pipeline[pipeline] = {
                **base_row("throughput", name, f"{pipeline} path", args, batch_size),
                "images_per_s": speed, "epoch_s": EPOCH_IMAGES / speed,
                "note": f"{args.steps} steps after {args.warmup_steps} warm-up{workers}"}
        if {"fast", "classic"} <= by_pipeline.keys():
            ratio = by_pipeline["fast"]["images_per_s"] / by_pipeline["classic"]["images_per_s"]
            by_pipeline["fast"]["ratio"] = f"{ratio:.2f}x classic"
        rows += by_pipeline.values()
    return rows


def overhead_rows(args: argparse.Namespace,
                  measured: dict[tuple[str, str], tuple[float, int]]) -> list[dict[str, Any]]:
    rows = []
    for name in args.models:
        recipe = load_recipe(args.recipes, MODEL_RECIPES[name])
        # The throughput section's Lightning run on the fast path, when it ran: same settings.
        if (name, "fast") not in measured:
            measured[name, "fast"] = lightning_throughput(recipe, args, "fast")
        lightning_speed, batch_size = measured[name, "fast"]
        L.seed_everything(0, verbose=False)
        datamodule = synthetic_data(recipe, args, "fast")
        plain_speed = plain_loop_throughput(build_model(recipe, datamodule, args), datamodule,
                                            torch.device(args.device), args.precision,
                                            args.warmup_steps, args.steps)
        overhead = 100 * (plain_speed / lightning_speed - 1)  # extra time per step, %
        rows.append({**base_row("overhead", name, "plain PyTorch loop", args, batch_size),
                     "images_per_s": plain_speed, "epoch_s": EPOCH_IMAGES / plain_speed})
        rows.append({**base_row("overhead", name, "Lightning", args, batch_size),
                     "images_per_s": lightning_speed, "epoch_s": EPOCH_IMAGES / lightning_speed,
                     "ratio": f"{overhead:+.1f}% time per step"})
    return rows


def real_data(recipe: dict[str, Any], args: argparse.Namespace) -> CIFAR10DataModule:
    data_dir = args.data_dir or os.environ.get("CIFAR10_DIR")
    if not data_dir:
        raise ConfigError("--time-to-52 and --time-to-94 need the real CIFAR-10: give "
                          "--data-dir or set CIFAR10_DIR")
    extra = {"subset_per_class": args.subset_per_class} if args.subset_per_class else {}
    datamodule = CIFAR10DataModule(data_dir=data_dir, download=False,
                                   **data_settings(recipe, args, **extra))
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
    except DataError as error:
        # The datamodule names the training entry points' flags; here there is --data-dir.
        message = str(error).replace(" (--data.download false)", "")
        raise DataError(message.replace("--data.data_dir", "--data-dir")) from None
    return datamodule


def recipe_time_to_accuracy(config_name: str, target: float, seed: int, max_epochs: int | None,
                            args: argparse.Namespace) -> tuple[TimeToAccuracy, ImageDataModule]:
    """Train the recipe until the test accuracy reaches `target` (or its last epoch)."""
    recipe = load_recipe(args.recipes, config_name)
    L.seed_everything(seed, verbose=False)
    datamodule = real_data(recipe, args)
    model = build_model(recipe, datamodule, args)
    # A recipe with flip TTA (model.flip_tta) gets that accuracy reported beside the plain one.
    clock = TimeToAccuracy(target, datamodule.test_set.images, datamodule.test_set.labels,
                           flip_tta=model.hparams.flip_tta)
    averaging = build_weight_averaging(
        ema_decay=(recipe.get("ema") or {}).get("decay"),
        swa_epoch_start=(recipe.get("swa") or {}).get("epoch_start"))
    trainer_settings = recipe.get("trainer") or {}
    trainer = trainer_for(args, [*averaging, clock],
                          max_epochs=max_epochs or trainer_settings.get("max_epochs", 30),
                          log_every_n_steps=trainer_settings.get("log_every_n_steps", 50))
    trainer.fit(model, datamodule=datamodule)
    return clock, datamodule


def outcome(entry: tuple[int, float, float], reached: bool, target: float) -> str:
    epoch, seconds, _ = entry
    if reached:
        return f"reached {100 * target:g}% after epoch {epoch}"
    return f"NOT reached in {epoch} epochs ({seconds:.0f} s): the time is a lower bound"


def time_to_52_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    target = args.target_52
    clock, datamodule = recipe_time_to_accuracy(args.recipe_52, target, 0,
                                                args.recipe_max_epochs, args)
    # The baseline trains on the same training images (and is tested on the same test
    # images), on the CPU.
    baseline = seed_time_to_accuracy(datamodule, target, args.seed_max_epochs)
    baseline_end, baseline_reached = baseline[-1], baseline[-1][2] >= target
    seed_widths = "-".join(str(width) for width in (
        datamodule.in_channels * datamodule.image_size ** 2, *SEED_WIDTHS,
        datamodule.num_classes))
    recipe_end = clock.reached or clock.history[-1]
    speedup = ""
    if clock.reached is not None:
        # Below 1: the recipe is slower. A baseline that missed the target ran out of
        # epochs, so its time and the speed-up are lower bounds.
        speedup = (f"speed-up {'>= ' if not baseline_reached else ''}"
                   f"{baseline_end[1] / recipe_end[1]:.2f}x")
    return [
        {**base_row("time to accuracy", f"seed MLP {seed_widths}", "seed-style baseline",
                    args, SEED_BATCH_SIZE), "device": "cpu", "precision": "32-true",
         "time_s": baseline_end[1], "accuracy": baseline_end[2],
         "note": outcome(baseline_end, baseline_reached, target)},
        {**base_row("time to accuracy", "mlp", f"{args.recipe_52} (fast path)", args,
                    datamodule.hparams.batch_size),
         "time_s": recipe_end[1], "accuracy": recipe_end[2], "ratio": speedup,
         "note": outcome(recipe_end, clock.reached is not None, target)},
    ]


def time_to_94_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows, times = [], []
    for seed in range(args.seeds):
        clock, datamodule = recipe_time_to_accuracy(args.recipe_94, args.target_94, seed,
                                                    None, args)
        end = clock.reached or clock.history[-1]
        if clock.reached is not None:
            times.append(end[1])
        rows.append({**base_row("time to accuracy", "resnet18", f"{args.recipe_94} seed {seed}",
                                args, datamodule.hparams.batch_size),
                     "time_s": end[1], "accuracy": end[2],
                     "accuracy_flip_tta": clock.flip_tta_accuracy.get(end[0]),
                     "note": outcome(end, clock.reached is not None, args.target_94)})
    if times:
        spread = statistics.stdev(times) if len(times) > 1 else 0.0
        rows.append({**base_row("time to accuracy", "resnet18", f"{args.recipe_94} mean",
                                args, rows[0]["batch_size"]),
                     "time_s": statistics.mean(times),
                     "note": f"mean +- std {statistics.mean(times):.1f} +- {spread:.1f} s over "
                             f"the {len(times)} of {args.seeds} seeds that reached the target"})
    return rows


def hardware() -> str:
    cpus = os.cpu_count()
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, {cpus} CPU cores"
    return f"{platform.processor() or platform.machine()}, {cpus} CPU cores, no GPU"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device: cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--precision", default=None,
                        choices=["32-true", "bf16-mixed", "16-mixed", "bf16-true"],
                        help="Lightning precision (default: bf16-mixed on GPUs with bf16, "
                             "else 32-true)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size (default: each recipe's)")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50, help="measured training steps")
    parser.add_argument("--models", nargs="+", choices=list(MODEL_RECIPES),
                        default=list(MODEL_RECIPES))
    parser.add_argument("--pipelines", nargs="+", choices=["fast", "classic"],
                        default=["fast", "classic"])
    parser.add_argument("--num-workers", type=int, default=None,
                        help="classic path DataLoader workers (default: CPU cores, at most 8)")
    parser.add_argument("--train-images", type=int, default=EPOCH_IMAGES,
                        help="synthetic training images for the throughput runs")
    parser.add_argument("--resnet-widths", type=int, nargs=4, default=None)
    parser.add_argument("--mlp-widths", type=int, nargs="+", default=None)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument("--time-to-52", action="store_true",
                        help="seed-style baseline vs our MLP recipe to 52%% test accuracy")
    parser.add_argument("--target-52", type=float, default=0.52)
    parser.add_argument("--seed-max-epochs", type=int, default=20)
    parser.add_argument("--recipe-max-epochs", type=int, default=None,
                        help="epochs of the MLP recipe (default: the recipe's)")
    parser.add_argument("--time-to-94", action="store_true",
                        help="ResNet18 fast recipe to 94%% (GPU only)")
    parser.add_argument("--recipe-94", default="cifar_resnet18_fast94.yaml")
    parser.add_argument("--recipe-52", default="cifar_mlp_fast52.yaml",
                        help="MLP recipe raced to 52%% (cifar_mlp.yaml: the 20-epoch recipe)")
    parser.add_argument("--target-94", type=float, default=0.94)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 (default: $CIFAR10_DIR)")
    parser.add_argument("--subset-per-class", type=int, default=None,
                        help="train the time-to-accuracy runs on this many images per class")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 is fastest on a CPU "
                             "shared with other jobs")
    parser.add_argument("--out", default="runs/benchmark")
    return parser.parse_args(argv)


def parse_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: give cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"--device {name}: no CUDA GPU is available here")
        if (device.index or 0) >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA GPU(s), "
                              f"cuda:0 to cuda:{count - 1}")
    return device


def check(args: argparse.Namespace) -> None:
    """Every flag checked before anything runs: a bad one ends in one line, exit 2."""
    check_range("--warmup-steps", args.warmup_steps, 0)
    check_range("--steps", args.steps, 1)
    check_range("--train-images", args.train_images, 2)
    check_range("--seeds", args.seeds, 1)
    check_range("--seed-max-epochs", args.seed_max_epochs, 1)
    check_range("--target-52", args.target_52, 0.0, 1.0, low_inclusive=False)
    check_range("--target-94", args.target_94, 0.0, 1.0, low_inclusive=False)
    for flag in ("batch_size", "recipe_max_epochs", "subset_per_class"):
        if getattr(args, flag) is not None:
            check_range(f"--{flag.replace('_', '-')}", getattr(args, flag), 1)
    if args.num_workers is not None:
        check_range("--num-workers", args.num_workers, 0)
    for flag in ("resnet_widths", "mlp_widths"):
        for width in getattr(args, flag) or []:
            check_range(f"--{flag.replace('_', '-')}", width, 1)
    device = parse_device(args.device)
    if args.time_to_94 and device.type != "cuda":
        raise ConfigError("--time-to-94 trains the ResNet18 recipe to 94% and needs a CUDA "
                          "GPU (--device cuda); on a CPU it would take days")
    if args.precision is None:
        args.precision = default_precision("gpu" if device.type == "cuda" else "cpu")
    check_accelerator("gpu" if device.type == "cuda" else "cpu", args.precision)
    if not args.no_overhead and args.precision not in PLAIN_LOOP_PRECISIONS:
        raise ConfigError(f"the overhead section's plain loop runs precision 32-true or "
                          f"bf16-mixed, not {args.precision}; pick one or add --no-overhead")
    if args.threads is not None:
        check_range("--threads", args.threads, 1)
        torch.set_num_threads(args.threads)
    for recipe in MODEL_RECIPES.values():
        load_recipe(args.recipes, recipe)
    if args.time_to_52 or args.time_to_94:
        if args.time_to_94:
            load_recipe(args.recipes, args.recipe_94)
        if args.time_to_52:
            load_recipe(args.recipes, args.recipe_52)
        # The data are read now (decoded once, then cached): a wrong path or a broken
        # image fails here, not after the throughput runs.
        real_data(load_recipe(args.recipes, MODEL_RECIPES["mlp"]), args)


def main(argv: list[str] | None, recipes: Recipes) -> list[dict[str, Any]]:
    args = parse_args(argv)
    args.recipes = recipes
    try:
        check(args)
        rows: list[dict[str, Any]] = []
        measured: dict[tuple[str, str], tuple[float, int]] = {}
        if not args.no_throughput:
            rows += throughput_rows(args, measured)
        if not args.no_overhead:
            rows += overhead_rows(args, measured)
        if args.time_to_52:
            rows += time_to_52_rows(args)
        if args.time_to_94:
            rows += time_to_94_rows(args)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    header = (f"Benchmark on {hardware()} ({torch.get_num_threads()} torch threads); "
              f"torch {torch.__version__}, "
              f"lightning {L.__version__}; `python -m experiments.benchmark "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}`")
    csv_path, md_path = write_report(rows, Path(args.out), header)
    print(header)
    print(markdown_table(rows))
    print(f"written: {csv_path} and {md_path}")
    return rows
