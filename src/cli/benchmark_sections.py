"""The benchmark's sections: which runs are compared, in which order, and the rows that
summarize them.

Every comparison interleaves its sides (A, B, A, B, ...; `src/benchmark/interleave.py`)
and logs each raw value. Timing sections repeat each side `--repeats` times and report
the median [min, max] of each side and of the per-pair ratio; the sections that train to
an accuracy run each side once per seed (`--seeds`, from `--first_seed`) and report every
seed's row, then the mean ± std of each side and the median [min, max] of the per-seed
ratio.
"""

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from src.benchmark import augmentations as augment_speed
from src.benchmark.interleave import Measurement, RawLog, interleave
from src.benchmark.seed_baseline import SEED_BATCH_SIZE, SEED_WIDTHS
from src.benchmark.stats import mean_std, median_range, pair_ratios
from src.cli import benchmark_runs as runs

EPOCH_IMAGES = 50_000
AUGMENT_BATCH = 512  # the augmentations section's batch when --batch_size is not given
AUGMENT_IMAGE_SIZE = 32  # CIFAR's side
Row = dict[str, Any]


def base_row(args: argparse.Namespace, section: str, model: str, setup: str,
             batch_size: int, runs_count: int) -> Row:
    return {"section": section, "model": model, "setup": setup, "device": args.device,
            "precision": args.precision, "batch_size": batch_size, "runs": runs_count}


def ranged(key: str, values: Sequence[float]) -> Row:
    spread = median_range(values)
    return {key: spread.center, f"{key}_min": spread.low, f"{key}_max": spread.high}


def ratio_cells(ratios: Sequence[float], unit: str) -> Row:
    return {**ranged("ratio", ratios), "ratio_unit": unit}


def seeds_of(args: argparse.Namespace) -> list[int]:
    return list(range(args.first_seed, args.first_seed + args.seeds))


def values_of(measurements: list[Measurement], metric: str) -> list[float]:
    return [measurement[metric] for measurement in measurements]


# -- timing sections -----------------------------------------------------------------------

def speed_rows(args: argparse.Namespace, section: str, model: str, batch: int,
               speeds: dict[str, list[float]]) -> dict[str, Row]:
    """setup -> its row: images/s and the time of a 50,000-image epoch, median [min, max]."""
    return {setup: {**base_row(args, section, model, setup, batch, len(values)),
                    **ranged("images_per_s", values),
                    **ranged("epoch_s", [EPOCH_IMAGES / value for value in values])}
            for setup, values in speeds.items()}


def measure_speeds(args: argparse.Namespace, section: str, model: str,
                   sides: dict[str, tuple[Callable[..., Measurement], runs.Parts]],
                   raw: RawLog) -> tuple[dict[str, list[float]], int]:
    """Images/s of each side (a throughput function and the parts it trains) over
    `--repeats` interleaved runs, and the batch size they train at."""
    measured = interleave({setup: (lambda seed, measure=measure, parts=parts:
                                   measure(args, parts))
                           for setup, (measure, parts) in sides.items()},
                          [0] * args.repeats, raw, section, model)
    _, (_, datamodule, _) = next(iter(sides.values()))  # every side trains at this batch
    return {setup: values_of(values, "images_per_s")
            for setup, values in measured.items()}, datamodule.hparams.batch_size


def throughput_rows(args: argparse.Namespace, raw: RawLog) -> list[Row]:
    """Each model's training images/s on the fast and the classic path (same model, batch
    size, precision and augmentations); ratio: fast / classic, per pair."""
    rows = []
    for model in args.models:
        speeds, batch = measure_speeds(args, "throughput", model, {
            f"{pipeline} path": (runs.lightning_throughput,
                                 runs.throughput_parts(args, model, pipeline))
            for pipeline in args.pipelines}, raw)
        by_setup = speed_rows(args, "throughput", model, batch, speeds)
        for setup, row in by_setup.items():
            workers = ""
            if setup == "classic path" and args.num_workers is not None:
                workers = f", {args.num_workers} workers"
            row["note"] = f"{args.steps} steps after {args.warmup_steps} warm-up{workers}"
        if {"fast path", "classic path"} <= speeds.keys():
            by_setup["fast path"].update(ratio_cells(
                pair_ratios(speeds["fast path"], speeds["classic path"]), "x classic"))
        rows += by_setup.values()
    return rows


def overhead_rows(args: argparse.Namespace, raw: RawLog) -> list[Row]:
    """The same module, optimizer, schedule and fast-path batches in a plain PyTorch loop
    and in Lightning; ratio: Lightning's extra time per step, per pair."""
    rows = []
    for model in args.models:
        plain, lightning = "plain PyTorch loop", "Lightning"
        speeds, batch = measure_speeds(args, "overhead", model, {
            plain: (runs.plain_throughput, runs.throughput_parts(args, model, "fast")),
            lightning: (runs.lightning_throughput, runs.throughput_parts(args, model, "fast"))},
            raw)
        by_setup = speed_rows(args, "overhead", model, batch, speeds)
        # plain / Lightning speed = Lightning / plain time per step.
        extra = [100 * (ratio - 1) for ratio in pair_ratios(speeds[plain], speeds[lightning])]
        by_setup[lightning].update(ratio_cells(extra, "% time per step"))
        rows += by_setup.values()
    return rows


def augmentation_rows(args: argparse.Namespace, raw: RawLog) -> list[Row]:
    """Images/s of each chosen registry augmentation (default parameters) and of kornia's
    equivalent on the same uint8 batch, interleaved; ratio: registry / kornia, per pair."""
    device = torch.device(args.device)
    batch_size = args.batch_size or AUGMENT_BATCH
    images, labels = augment_speed.batch(batch_size, AUGMENT_IMAGE_SIZE, device)
    note = f"{args.augment_steps} batches after {args.warmup_steps} warm-up"
    rows = []
    for name in args.augmentations:
        found = augment_speed.sides(name, AUGMENT_IMAGE_SIZE, device)
        measured = interleave(
            {setup: (lambda seed, augment=augment: {
                "images_per_s": augment_speed.images_per_second(
                    augment, images, labels, args.warmup_steps, args.augment_steps, device)})
             for setup, augment in found.items()},
            [0] * args.repeats, raw, "augmentations", name)
        speeds = {setup: values_of(values, "images_per_s") for setup, values in measured.items()}
        by_setup = speed_rows(args, "augmentations", None, batch_size, speeds)
        registry, *kornia = speeds
        for setup, row in by_setup.items():
            row.update(precision=None, note=note if setup == registry else
                       f"{note}; uint8 -> float conversion timed on this side")
        if kornia:
            by_setup[registry].update(ratio_cells(
                pair_ratios(speeds[registry], speeds[kornia[0]]), "x kornia"))
        else:
            by_setup[registry]["note"] += "; kornia has no equivalent"
        rows += by_setup.values()
    return rows


# -- sections over seeds ---------------------------------------------------------------------

def seed_rows(args: argparse.Namespace, section: str, model: str, setup: str,
              batch: int, measurements: list[Measurement],
              note: Callable[[Measurement], str], mean_note: str) -> list[Row]:
    """One row per seed, then `<setup>, mean` with the mean ± std of every metric that
    every seed measured."""
    keys = [key for key in ("time_s", "accuracy", "accuracy_flip_tta", "best_val_accuracy",
                            "run_s")
            if all(m.get(key) is not None for m in measurements)]
    rows = [{**base_row(args, section, model, f"{setup}, seed {seed}", batch, 1),
             **{key: m[key] for key in keys}, "note": note(m)}
            for seed, m in zip(seeds_of(args), measurements, strict=True)]
    mean = base_row(args, section, model, f"{setup}, mean", batch, len(measurements))
    for key in keys:
        mean[key], mean[f"{key}_std"] = mean_std(values_of(measurements, key))
    return [*rows, {**mean, "note": mean_note}]


def outcome(target: float) -> Callable[[Measurement], str]:
    def note(m: Measurement) -> str:
        epochs = int(m["epochs"])
        if m["reached"]:
            return f"reached {100 * target:g}% after epoch {epochs}"
        return f"NOT reached in {epochs} epochs: the time is a lower bound"
    return note


def reached_note(target: float, measurements: list[Measurement]) -> str:
    reached = sum(int(m["reached"]) for m in measurements)
    missed = "" if reached == len(measurements) else \
        " (the others' times are lower bounds)"
    return f"reached {100 * target:g}% in {reached} of {len(measurements)} seeds{missed}"


def time_to_52_rows(args: argparse.Namespace, raw: RawLog) -> list[Row]:
    """The seed-style baseline (CPU) against our MLP recipe, to 52% test accuracy, on the
    same training images; ratio: baseline time / recipe time per seed (the speed-up)."""
    target, recipe = args.target_52, args.recipe_52
    datamodule = runs.real_data(args, "mlp", recipe)  # the baseline trains on its split
    sides = {"seed-style baseline": lambda seed: runs.seed_baseline(args, datamodule, target,
                                                                    seed),
             recipe: lambda seed: runs.time_to_accuracy(args, "mlp", recipe, target, seed)}
    section = f"time to {100 * target:g}%"
    measured = interleave(sides, seeds_of(args), raw, section, "mlp")
    baseline, ours = measured["seed-style baseline"], measured[recipe]
    widths = "-".join(str(width) for width in (
        datamodule.in_channels * datamodule.image_size ** 2, *SEED_WIDTHS,
        datamodule.num_classes))
    rows = seed_rows(args, section, f"seed MLP {widths}", "seed-style baseline",
                     SEED_BATCH_SIZE, baseline, outcome(target), reached_note(target, baseline))
    for row in rows:
        row.update(device="cpu", precision="32-true")  # the baseline's own loop
    rows += seed_rows(args, section, "mlp", f"{recipe} (fast path)",
                      datamodule.hparams.batch_size, ours, outcome(target),
                      reached_note(target, ours))
    rows[-1].update(ratio_cells(pair_ratios(values_of(baseline, "time_s"),
                                            values_of(ours, "time_s")), "x speed-up"))
    return rows


def time_to_94_rows(args: argparse.Namespace, raw: RawLog) -> list[Row]:
    """The fast ResNet18 recipe to 94% test accuracy, once per seed."""
    target, recipe = args.target_94, args.recipe_94
    section = f"time to {100 * target:g}%"
    measured = interleave({recipe: lambda seed: runs.time_to_accuracy(
        args, "resnet18", recipe, target, seed)}, seeds_of(args), raw, section, "resnet18")
    return seed_rows(args, section, "resnet18", recipe,
                     runs.real_data_batch_size(args, "resnet18", recipe), measured[recipe],
                     outcome(target), reached_note(target, measured[recipe]))


def run_folder(args: argparse.Namespace, section: str) -> Path:
    """Where a section's entry-point runs go: one folder per run inside it."""
    return Path(args.out_dir) / "runs" / section


def cpu_resnet18_rows(args: argparse.Namespace, raw: RawLog) -> list[Row]:
    """The CPU ResNet18 recipe trained through our entry point and by the classic loop of
    the common CIFAR repositories, side by side per seed; ratio: classic / our training
    time per seed (the speed-up)."""
    recipe, folder = args.recipe_cpu, run_folder(args, "cpu_resnet18")
    ours, classic = "entry point (Lightning, fast path)", \
        "plain loop, torchvision-style Dataset (classic path)"
    sides = {ours: lambda seed: runs.entry_point_run(args, "resnet18", recipe, seed,
                                                     folder / f"entry_point_seed{seed}"),
             classic: lambda seed: runs.classic_run(args, "resnet18", recipe, seed)}
    section = "cpu resnet18"
    measured = interleave(sides, seeds_of(args), raw, section, "resnet18")
    batch = runs.real_data_batch_size(args, "resnet18", recipe)
    explained = "train s: training epochs, validation excluded; run s: the whole run"
    our_rows = seed_rows(args, section, "resnet18", f"{recipe}: {ours}", batch,
                         measured[ours], lambda m: f"runs in {folder}", explained)
    our_rows[-1].update(ratio_cells(pair_ratios(values_of(measured[classic], "time_s"),
                                                values_of(measured[ours], "time_s")),
                                    "x speed-up"))
    return our_rows + seed_rows(args, section, "resnet18", f"{recipe}: {classic}", batch,
                                measured[classic],
                                lambda m: f"{args.loop_workers} DataLoader workers", explained)


def five_min_rows(args: argparse.Namespace, raw: RawLog) -> list[Row]:
    """The 5-minute ResNet18 recipe through the entry point, once per seed: test accuracy
    of its final (EMA) weights, with flip TTA beside it."""
    recipe, folder = args.recipe_5min, run_folder(args, "five_min")
    section = "5-minute recipe"
    measured = interleave({recipe: lambda seed: runs.entry_point_run(
        args, "resnet18", recipe, seed, folder / f"seed{seed}")},
        seeds_of(args), raw, section, "resnet18")
    return seed_rows(args, section, "resnet18", recipe,
                     runs.real_data_batch_size(args, "resnet18", recipe), measured[recipe],
                     lambda m: f"runs in {folder}",
                     "train s: training epochs (stopped at max_time); run s: the whole run")


SECTIONS: dict[str, Callable[[argparse.Namespace, RawLog], list[Row]]] = {
    "throughput": throughput_rows,
    "overhead": overhead_rows,
    "time_to_52": time_to_52_rows,
    "time_to_94": time_to_94_rows,
    "cpu_resnet18": cpu_resnet18_rows,
    "five_min": five_min_rows,
    "augmentations": augmentation_rows,
}
