"""Training-speed benchmark, one process, one report.

    python -m experiments.benchmark [--device cuda] [--steps 50] [--models resnet18 mlp]
    python -m experiments.benchmark --time_to_52 --data.data_dir $CIFAR10_DIR    # real data
    python -m experiments.benchmark --cpu_resnet18 --data.data_dir $CIFAR10_DIR  # hours
    python -m experiments.benchmark --gpu_suite --data.data_dir $CIFAR10_DIR     # GPU
    python -m experiments.benchmark --augmentations [NAME ...]                  # vs kornia

Sections (rows of one table, printed, and written to <out_dir>/benchmark.csv and .md;
every raw value measured to <out_dir>/benchmark_raw.csv, as it is measured):
- throughput: training images/s of each recipe's model (ResNet18, MLP) on the fast path
  and on the classic path (same model, batch size, precision, augmentations), on
  synthetic uint8 images of CIFAR's shape; the epoch time of 50,000 images follows
  from it; ratio = fast / classic.
- overhead: the same module, optimizer and fast-path batches in a plain PyTorch loop
  versus Lightning; ratio = Lightning's extra time per step (percent).
- time to 52% (--time_to_52, real CIFAR-10): the seed-style baseline (per-image Dataset,
  MLP 3072-100-100-10 + BatchNorm, Adam, StepLR, batch 32) against our MLP recipe
  (--recipe_52, default cifar_mlp_fast52.yaml); ratio = speed-up (below 1: slower).
  Test accuracy is checked after every epoch, off the clock; the recipe's own validation
  stays on it (it is part of the recipe).
- time to 94% (--time_to_94, GPU only): the fast ResNet18 recipe; the test accuracy with
  flip TTA in its own column (the target is judged without it).
- --cpu_resnet18 (alone, real CIFAR-10, hours on a CPU): the CPU ResNet18 recipe
  (--recipe_cpu) trained through our entry point (fit, then the test of the best
  checkpoint by validation) and by the plain loop of the common CIFAR repositories
  (torchvision-style Dataset of PIL images, per-image transforms in --loop_workers
  DataLoader workers, best weights by validation tested once); ratio = speed-up of ours.
- --augmentations [NAME ...] (alone; no names: every one): images/s of each augmentation
  of the registry (default parameters) and of kornia's batched equivalent, on the same
  batch of uint8 CIFAR-shaped images (--batch_size, default 512) on --device, each side
  timed over --augment_steps batches; kornia's side includes its uint8 -> float
  conversion. ratio = registry / kornia.
- --gpu_suite (alone, CUDA, the whole CIFAR-10): part 1 = throughput, overhead and time
  to 94%; --gpu_suite_part 2 = the 5-minute recipe (--recipe_5min) through the entry point.

Timing comparisons run their sides in turn (A, B, A, B, ...) --repeats times, each run
after --warmup_steps untimed steps: median [min, max] of each side and of the per-pair
ratio. Training to an accuracy runs each side once per seed, in turn: each seed's row,
then mean ± std, and the median [min, max] of the per-seed ratio. Timings are measured,
never asserted. Models, data and trainers are built from experiments/configs/*.yaml by
the entry points' own parser (src/cli/benchmark_runs.py).
"""

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from src.benchmark.interleave import RawLog
from src.benchmark.plain_loop import PLAIN_LOOP_PRECISIONS
from src.benchmark.report import benchmark_table, write_report
from src.cli import benchmark_runs as runs
from src.cli.benchmark_sections import SECTIONS, run_folder
from src.cli.boundary import OneLineArgumentParser, run_command
from src.core.errors import ConfigError, DataError, check_range
from src.core.recipes import Recipes
from src.datamodules.augment import AUGMENTATIONS
from src.datamodules.sources import check_folder_layout, list_image_files
from src.reporting.hardware import hardware_line
from src.runs.preflight import check_accelerator, default_precision
from src.runs.resume_record import setting_difference, start_or_check

MODELS = tuple(runs.ENTRY_POINTS)
# The GPU suite measures the whole CIFAR-10 and nothing else: exactly these many images.
CIFAR10_IMAGES = {"train": 50_000, "test": 10_000}
# Flags that pick sections; a mode (--cpu_resnet18, --gpu_suite) picks its own.
SECTION_FLAGS = ("no_throughput", "no_overhead", "time_to_52", "time_to_94")
MODES = ("cpu_resnet18", "gpu_suite", "augmentations")
# Sections on the real CIFAR-10: section -> (model, flag naming its recipe).
REAL_DATA = {"time_to_52": ("mlp", "recipe_52"), "time_to_94": ("resnet18", "recipe_94"),
             "cpu_resnet18": ("resnet18", "recipe_cpu"), "five_min": ("resnet18", "recipe_5min")}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="python -m experiments.benchmark",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--device", default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device: cpu, cuda, cuda:1 (default: cuda if available)")
    add("--precision", default=None, choices=["32-true", "bf16-mixed", "16-mixed", "bf16-true"],
        help="Lightning precision (default: bf16-mixed on GPUs with bf16, else 32-true)")
    add("--batch_size", type=int, default=None, help="batch size (default: each recipe's)")
    add("--warmup_steps", type=int, default=5,
        help="untimed training steps at the start of every throughput run")
    add("--steps", type=int, default=50, help="timed training steps of every throughput run")
    add("--repeats", type=int, default=5,
        help="runs of each side of a timing comparison, interleaved (A, B, A, B, ...)")
    add("--models", nargs="+", choices=MODELS, default=list(MODELS))
    add("--pipelines", nargs="+", choices=["fast", "classic"], default=["fast", "classic"])
    add("--num_workers", type=int, default=None,
        help="classic path DataLoader workers of the throughput runs (default: CPU cores, "
             "at most 8)")
    add("--train_images", type=int, default=50_000,
        help="synthetic training images for the throughput runs")
    add("--resnet_widths", type=int, nargs=4, default=None,
        help="ResNet18 stage widths of every ResNet18 recipe (default: each recipe's)")
    add("--mlp_widths", type=int, nargs="+", default=None,
        help="hidden widths of every MLP recipe (default: each recipe's)")
    add("--channels_last", action="store_true")
    add("--compile", action="store_true", help="torch.compile the network")
    add("--no_throughput", action="store_true")
    add("--no_overhead", action="store_true")
    add("--time_to_52", action="store_true",
        help="seed-style baseline vs our MLP recipe to 52%% test accuracy")
    add("--target_52", type=float, default=0.52)
    add("--seed_max_epochs", type=int, default=20, help="epochs of the seed-style baseline")
    add("--recipe_52", default="cifar_mlp_fast52.yaml",
        help="MLP recipe raced to 52%% (cifar_mlp.yaml: the 20-epoch recipe)")
    add("--time_to_94", action="store_true", help="ResNet18 fast recipe to 94%% (GPU only)")
    add("--recipe_94", default="cifar_resnet18_fast94.yaml")
    add("--target_94", type=float, default=0.94)
    add("--cpu_resnet18", action="store_true",
        help="the CPU ResNet18 recipe through our entry point vs the common repositories' "
             "plain loop, per seed (alone)")
    add("--recipe_cpu", default="cifar_resnet18_cpu.yaml")
    add("--loop_workers", type=int, default=2,
        help="DataLoader workers of the plain loop in --cpu_resnet18")
    add("--gpu_suite", action="store_true",
        help="every GPU measurement, on the whole CIFAR-10 (alone; CUDA only)")
    add("--gpu_suite_part", type=int, choices=[1, 2], default=None,
        help="1 (default): throughput, overhead, time to 94%%; 2: the 5-minute recipe")
    add("--recipe_5min", default="cifar_resnet18_5min.yaml")
    add("--augmentations", nargs="*", default=None, choices=list(AUGMENTATIONS),
        metavar="NAME",
        help="images/s of these augmentations (none named: all) and of kornia's "
             "equivalents (alone)")
    add("--augment_steps", type=int, default=10,
        help="timed batches of every augmentation run")
    add("--max_epochs", type=int, default=None,
        help="epochs of the recipes trained to an accuracy (default: each recipe's)")
    add("--seeds", type=int, default=3, help="seeds of the sections that train to an accuracy")
    add("--first_seed", type=int, default=0, help="seeds are first_seed .. first_seed+seeds-1")
    add("--data.data_dir", dest="data_dir", default=None,
        help="CIFAR-10 image folders (default: $CIFAR10_DIR)")
    add("--subset_per_class", type=int, default=None,
        help="train the runs on real data on this many images per class")
    add("--threads", type=int, default=None,
        help="torch CPU threads (default: torch's); 1 is fastest on a CPU shared with "
             "other jobs")
    add("--out_dir", default="runs/benchmark")
    add("--resume", action="store_true",
        help="continue the stopped benchmark in --out_dir (same flags, same machine): "
             "measurements already in its benchmark_raw.csv are reused, the rest made")
    args = parser.parse_args(argv)
    if args.augmentations == []:  # the flag alone: every augmentation
        args.augmentations = list(AUGMENTATIONS)
    return args


def sections(args: argparse.Namespace) -> list[str]:
    """The sections to run, in order."""
    if args.gpu_suite:
        return ["five_min"] if args.gpu_suite_part == 2 else \
            ["throughput", "overhead", "time_to_94"]
    if args.cpu_resnet18:
        return ["cpu_resnet18"]
    if args.augmentations:
        return ["augmentations"]
    chosen = [name for name, off in (("throughput", args.no_throughput),
                                     ("overhead", args.no_overhead)) if not off]
    return chosen + [name for name in ("time_to_52", "time_to_94") if getattr(args, name)]


def require_cuda(flag: str, device: torch.device) -> None:
    """The one CUDA check of the GPU-only measurements (tests replace it to run them on a
    CPU with tiny settings)."""
    if device.type != "cuda":
        seen = f"not --device {device}" if torch.cuda.is_available() else \
            "PyTorch sees no CUDA GPU here"
        raise ConfigError(f"--{flag} runs on a CUDA GPU only (--device cuda); {seen}")


def count_images(data_dir: Path) -> dict[str, int]:
    """Images per split of an image-folder data set (directory listings only)."""
    classes = check_folder_layout(data_dir)
    return {split: sum(len(list_image_files(data_dir / split / name)) for name in classes)
            for split in CIFAR10_IMAGES}


def check_whole_cifar10(data_dir: Path) -> None:
    counts = count_images(data_dir)
    if counts != CIFAR10_IMAGES:
        raise DataError(
            f"{data_dir} holds {counts['train']:,} training and {counts['test']:,} test "
            f"images; the GPU suite measures the whole CIFAR-10, "
            f"{CIFAR10_IMAGES['train']:,} + {CIFAR10_IMAGES['test']:,}: unpack every part "
            f"(../shared/data/cifar10/extract.sh DEST)")


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


def check_flags(args: argparse.Namespace) -> None:
    for flag in ("warmup_steps", "first_seed", "loop_workers"):
        check_range(f"--{flag}", getattr(args, flag), 0)
    for flag in ("steps", "repeats", "seeds", "seed_max_epochs", "augment_steps"):
        check_range(f"--{flag}", getattr(args, flag), 1)
    check_range("--train_images", args.train_images, 2)
    check_range("--target_52", args.target_52, 0.0, 1.0, low_inclusive=False)
    check_range("--target_94", args.target_94, 0.0, 1.0, low_inclusive=False)
    for flag in ("batch_size", "max_epochs", "subset_per_class", "threads"):
        if getattr(args, flag) is not None:
            check_range(f"--{flag}", getattr(args, flag), 1)
    if args.num_workers is not None:
        check_range("--num_workers", args.num_workers, 0)
    for flag in ("resnet_widths", "mlp_widths"):
        for width in getattr(args, flag) or []:
            check_range(f"--{flag}", width, 1)
    for mode in MODES:
        clash = [flag for flag in (*SECTION_FLAGS, *MODES) if flag != mode
                 and getattr(args, flag)]
        if getattr(args, mode) and clash:
            raise ConfigError(f"--{mode} runs its own sections alone; drop --{clash[0]}")
    if args.gpu_suite_part is not None and not args.gpu_suite:
        raise ConfigError("--gpu_suite_part goes with --gpu_suite")


def check(args: argparse.Namespace) -> list[str]:
    """Every flag, the device and the data checked before anything runs: a bad one ends
    in one line, exit 2. Returns the sections to run."""
    check_flags(args)
    chosen = sections(args)
    device = parse_device(args.device)
    if args.gpu_suite:
        require_cuda("gpu_suite", device)
    if "time_to_94" in chosen and not args.gpu_suite:
        require_cuda("time_to_94", device)
    if args.precision is None:
        args.precision = default_precision("gpu" if device.type == "cuda" else "cpu")
    check_accelerator("gpu" if device.type == "cuda" else "cpu", args.precision)
    if "overhead" in chosen and args.precision not in PLAIN_LOOP_PRECISIONS:
        raise ConfigError(f"the overhead section's plain loop runs precision 32-true or "
                          f"bf16-mixed, not {args.precision}; pick one or add --no_overhead")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for model in args.models:
        args.recipes.config(runs.ENTRY_POINTS[model])
    real = [REAL_DATA[name] for name in chosen if name in REAL_DATA]  # (model, recipe flag)
    for _, recipe in real:
        args.recipes.config(getattr(args, recipe))
    for name in ("cpu_resnet18", "five_min"):  # the entry-point runs' folders
        folder = run_folder(args, name)
        if name in chosen and not args.resume and folder.exists() and any(folder.iterdir()):
            raise ConfigError(f"{folder} holds the runs of an earlier benchmark; continue it "
                              f"with the same flags and --resume, or choose a new --out_dir")
    if real:
        args.data_dir = args.data_dir or os.environ.get("CIFAR10_DIR")
        if not args.data_dir:
            flag = next(flag for flag in ("gpu_suite", "cpu_resnet18", "time_to_52",
                                          "time_to_94") if getattr(args, flag))
            raise ConfigError(f"--{flag} needs the real CIFAR-10: give --data.data_dir or "
                              f"set CIFAR10_DIR")
        if args.gpu_suite:
            check_whole_cifar10(Path(args.data_dir))
        # Read now (decoded once, then cached): a wrong path or a broken image fails here,
        # not after an hour of other runs.
        model, recipe = real[0]
        runs.real_data(args, model, getattr(args, recipe))
    return chosen


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's notes (devices found, seeds set, tips) off for the benchmark's many short
    runs: its output is the table. Warnings still show."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def settings_record(args: argparse.Namespace, chosen: list[str]) -> dict[str, Any]:
    """What the measurements in --out_dir depend on: every flag but --out_dir and --resume,
    the machine, and the settings of every recipe file used (its comments may change). A
    resumed benchmark must match it, so that one table never mixes two settings or two
    machines."""
    flags = {key: value for key, value in sorted(vars(args).items())
             if key not in ("recipes", "resume", "out_dir")}
    timed = {"throughput", "overhead"} & set(chosen)  # the sections that use --models
    recipes = {runs.ENTRY_POINTS[model] for model in args.models} if timed else set()
    recipes |= {runs.ENTRY_POINTS[REAL_DATA[name][0]] for name in chosen if name in REAL_DATA}
    recipes |= {getattr(args, REAL_DATA[name][1]) for name in chosen if name in REAL_DATA}
    settings = {name: yaml.safe_load(args.recipes.config(name).read_text())
                for name in sorted(recipes)}
    return {"flags": flags, "hardware": hardware_line(), "recipes": settings}


def open_raw_log(args: argparse.Namespace, chosen: list[str]) -> RawLog:
    """A new raw log, its settings written beside it; or, with --resume, the stopped
    run's log, once its settings are checked against this command's."""
    out_dir = Path(args.out_dir)
    raw_path = out_dir / "benchmark_raw.csv"
    start_or_check(out_dir, "benchmark_settings.json", settings_record(args, chosen),
                   args.resume, "benchmark", settings_difference)
    if args.resume and raw_path.is_file():
        return RawLog.resumed(raw_path)
    return RawLog(raw_path)


def settings_difference(earlier: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The first way `now` differs from `earlier`, in words; None: the same."""
    flags = setting_difference(*({f"--{key}": value for key, value in record.items()}
                                 for record in (earlier.get("flags", {}), now["flags"])))
    if flags:
        return flags
    if earlier.get("hardware") != now["hardware"]:
        return f"another machine ({earlier.get('hardware')})"
    for name, settings in now["recipes"].items():
        if earlier.get("recipes", {}).get(name) != settings:
            return f"other settings in the recipe {name}"
    return None


def run(argv: list[str], recipes: Recipes) -> list[dict[str, Any]]:
    args = parse_args(argv)
    args.recipes = recipes
    out_dir = Path(args.out_dir)
    with quiet_lightning():
        chosen = check(args)
        raw = open_raw_log(args, chosen)
        rows = []
        for name in chosen:
            rows += SECTIONS[name](args, raw)
    how = []
    timings = {"throughput", "overhead", "augmentations"}
    if timings & set(chosen):
        how.append(f"timings: median [min, max] over {args.repeats} interleaved runs")
    if set(chosen) - timings:
        how.append(f"training runs: each of {args.seeds} seeds, then mean ± std")
    if raw.reused:
        how.append(f"resumed: {raw.reused} of {raw.measurements} measurements made by the "
                   f"stopped run(s) before")
    header = (f"Benchmark on {hardware_line()}, lightning {L.__version__}; "
              f"`{recipes.command('benchmark', *argv)}`; {'; '.join(how)}; every raw value: "
              f"benchmark_raw.csv")
    csv_path, md_path = write_report(rows, out_dir, header)
    print(header)
    print(benchmark_table(rows))
    print(f"written: {csv_path}, {md_path} and {raw.path}")
    return rows


def main(argv: list[str] | None, recipes: Recipes) -> list[dict[str, Any]]:
    return run_command(lambda: run(sys.argv[1:] if argv is None else argv, recipes))
