"""experiments.benchmark runs on a CPU with tiny settings and writes its tables.
Correctness only: no timing is asserted."""

import csv
import dataclasses
import math
import statistics
import time

import lightning as L
import pytest
import torch

from experiments import RECIPES, benchmark
from src.benchmark import augmentations as augment_speed
from src.benchmark import classic_loop, timing
from src.benchmark.classic_loop import ClassicData, ClassicRecipe, train_classic
from src.benchmark.interleave import RawLog, interleave
from src.benchmark.plain_loop import plain_loop_throughput
from src.benchmark.report import benchmark_table
from src.benchmark.stats import mean_std, median_range, pair_ratios
from src.benchmark.timing import StepTimer, TimeToAccuracy
from src.cli import benchmark as benchmark_lib
from src.cli import benchmark_runs
from src.core import clock as device_clock
from src.datamodules.augment import build_augmentations
from src.datamodules.augment.geometric import RandomCropWithPadding, RandomHorizontalFlip
from src.datamodules.sources import ImageSet
from src.datamodules.synthetic import SyntheticImageDataModule
from src.modules.classifier import ImageClassifier
from src.modules.losses import LossSettings
from src.modules.networks import NetworkSettings, NetworkShape
from src.modules.optimizers import OptimizerSettings
from src.modules.schedulers import ScheduleSettings

TINY = ["--steps", "2", "--warmup_steps", "1", "--train_images", "64", "--batch_size", "16",
        "--resnet_widths", "4", "8", "8", "8", "--mlp_widths", "8", "--num_workers", "1"]


def read_csv(path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def raw_values(path, section: str, model: str, metric: str) -> list[tuple[str, int, float]]:
    """(setup, repeat, value) of one metric, in the order measured."""
    rows = [row for row in read_csv(path) if (row["section"], row["model"], row["metric"])
            == (section, model, metric)]
    rows.sort(key=lambda row: int(row["order"]))
    return [(row["setup"], int(row["repeat"]), float(row["value"])) for row in rows]


# -- the statistics, against values worked out by hand -----------------------------------

def test_median_and_range():
    assert median_range([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)  # odd count: the middle value
    assert median_range([10.0, 1.0, 3.0, 2.0]) == (2.5, 1.0, 10.0)  # even: mean of 2 and 3
    with pytest.raises(ValueError):
        median_range([])


def test_per_pair_ratios_and_their_median():
    ratios = pair_ratios([2.0, 4.0, 9.0], [1.0, 2.0, 3.0])
    assert ratios == [2.0, 2.0, 3.0]
    assert median_range(ratios) == (2.0, 2.0, 3.0)
    # Not the ratio of the medians: median(a) / median(b) = 4 / 2 = 2 here too, so a case
    # where the two differ: pairs (1/1, 10/2, 3/3) -> ratios 1, 5, 1 -> median 1, while
    # median(a) / median(b) = 3 / 2.
    assert median_range(pair_ratios([1.0, 10.0, 3.0], [1.0, 2.0, 3.0])).center == 1.0
    with pytest.raises(ValueError):
        pair_ratios([1.0], [1.0, 2.0])


def test_mean_and_sample_standard_deviation():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert std == pytest.approx(math.sqrt(5 / 3))  # squares 2.25+0.25+0.25+2.25=5, n-1=3
    assert mean_std([7.0]) == (7.0, None)  # one seed: no spread to report


def test_markdown_cells_show_median_range_mean_std_and_ratio_units():
    rows = [{"section": "s", "images_per_s": 5720.0, "images_per_s_min": 5600.0,
             "images_per_s_max": 5800.0, "ratio": 7.04, "ratio_min": -1.5, "ratio_max": 9.0,
             "ratio_unit": "% time per step"},
            {"section": "s", "accuracy": 0.523, "accuracy_std": 0.004, "ratio": 1.774,
             "ratio_min": 1.7, "ratio_max": 1.85, "ratio_unit": "x classic"}]
    table = benchmark_table(rows)
    assert "| 5720 [5600, 5800] |" in table
    assert "| +7.0% [-1.5%, +9.0%] time per step |" in table
    assert "| 0.523 ± 0.004 |" in table and "| 1.77x [1.70x, 1.85x] classic |" in table
    assert "epoch s" not in table  # no row fills it: no column


def test_interleave_runs_the_sides_in_turn_and_logs_every_value(tmp_path):
    calls = []

    def side(name):
        def measure(seed):
            calls.append((name, seed))
            return {"time_s": float(len(calls)), "flip": None}  # None: not measured
        return measure

    raw = RawLog(tmp_path / "raw.csv")
    results = interleave({"A": side("A"), "B": side("B")}, [7, 8, 9], raw, "sec", "m")
    assert calls == [("A", 7), ("B", 7), ("A", 8), ("B", 8), ("A", 9), ("B", 9)]
    assert [m["time_s"] for m in results["A"]] == [1.0, 3.0, 5.0]
    written = read_csv(tmp_path / "raw.csv")  # on disk as measured, the None left out
    assert [(r["order"], r["setup"], r["repeat"], r["seed"], r["metric"], r["value"])
            for r in written[:2]] == [("0", "A", "0", "7", "time_s", "1.0"),
                                      ("1", "B", "0", "7", "time_s", "2.0")]
    assert len(written) == 6
    RawLog(tmp_path / "raw.csv").add("sec", "m", "A", 0, 0, {"x": 1.0})  # a new run
    assert len(read_csv(tmp_path / "raw.csv")) == 1  # starts the file afresh


def test_a_resumed_log_hands_back_earlier_measurements_and_measures_only_the_rest(tmp_path):
    path = tmp_path / "raw.csv"
    first = RawLog(path)
    first.add("sec", "m", "A", 0, 7, {"time_s": 1.5, "reached": 1.0})
    first.add("sec", "m", "B", 0, 7, {"time_s": 2.5, "reached": 0.0})
    first.add("sec", "m", "A", 1, 8, {"time_s": 3.5, "reached": 1.0})  # then stopped
    calls = []

    def side(name):
        def measure(seed):
            calls.append((name, seed))
            return {"time_s": 10.0 + len(calls), "reached": 1.0}
        return measure

    resumed = RawLog.resumed(path)
    results = interleave({"A": side("A"), "B": side("B")}, [7, 8, 9], resumed, "sec", "m")
    assert calls == [("B", 8), ("A", 9), ("B", 9)]  # only what the stopped run lacked
    assert results["A"] == [{"time_s": 1.5, "reached": 1.0}, {"time_s": 3.5, "reached": 1.0},
                            {"time_s": 12.0, "reached": 1.0}]
    assert [m["time_s"] for m in results["B"]] == [2.5, 11.0, 13.0]
    assert (resumed.reused, resumed.measurements) == (3, 6)
    written = read_csv(path)
    assert [int(row["order"]) for row in written] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [row["value"] for row in written if row["metric"] == "time_s"] == [
        "1.5", "2.5", "3.5", "11.0", "12.0", "13.0"]
    assert not list(tmp_path.glob("*.partial"))  # written whole, then moved into place
    # Another section, setup or seed is not the same measurement.
    assert resumed.earlier("sec", "m", "A", 0, 8) is None
    assert resumed.earlier("other", "m", "A", 0, 7) is None


# -- the command, end to end ----------------------------------------------------------------

def test_throughput_interleaves_paths_and_reports_medians_and_pair_ratios(tmp_path, capsys):
    rows = benchmark.main([*TINY, "--models", "mlp", "--no_overhead", "--repeats", "3",
                           "--out_dir", str(tmp_path)])
    assert [(row["model"], row["setup"]) for row in rows] == [("mlp", "fast path"),
                                                              ("mlp", "classic path")]
    measured = raw_values(tmp_path / "benchmark_raw.csv", "throughput", "mlp", "images_per_s")
    assert [(setup, repeat) for setup, repeat, _ in measured] == [
        ("fast path", 0), ("classic path", 0), ("fast path", 1), ("classic path", 1),
        ("fast path", 2), ("classic path", 2)]
    speeds = {setup: [value for name, _, value in measured if name == setup]
              for setup in ("fast path", "classic path")}
    for row in rows:
        values = speeds[row["setup"]]
        assert row["runs"] == 3 and (row["batch_size"], row["precision"]) == (16, "32-true")
        assert row["images_per_s"] == pytest.approx(statistics.median(values))
        assert (row["images_per_s_min"], row["images_per_s_max"]) == pytest.approx(
            (min(values), max(values)))
        assert row["epoch_s"] == pytest.approx(statistics.median([5e4 / v for v in values]))
    ratios = [fast / classic for fast, classic in zip(speeds["fast path"],
                                                      speeds["classic path"], strict=True)]
    fast = rows[0]
    assert fast["ratio"] == pytest.approx(statistics.median(ratios))
    assert (fast["ratio_min"], fast["ratio_max"]) == pytest.approx((min(ratios), max(ratios)))
    assert fast["ratio_unit"] == "x classic" and "ratio" not in rows[1]
    written = read_csv(tmp_path / "benchmark.csv")
    assert float(written[0]["images_per_s_max"]) == pytest.approx(fast["images_per_s_max"])
    header, *_ = (tmp_path / "benchmark.md").read_text().splitlines()
    assert "cores" in header and "median [min, max] over 3 interleaved runs" in header
    assert "| mlp | classic path |" in capsys.readouterr().out


def test_augmentations_interleave_registry_and_kornia_and_report_pair_ratios(tmp_path):
    rows = benchmark.main(["--augmentations", "crop", "mixup", "cutout", "--batch_size", "8",
                           "--augment_steps", "2", "--warmup_steps", "1", "--repeats", "3",
                           "--device", "cpu", "--out_dir", str(tmp_path)])
    assert [row["setup"] for row in rows] == [
        "crop: registry (geometric.RandomCropWithPadding)", "crop: kornia RandomCrop",
        "mixup: registry (mix.MixUp)", "mixup: kornia RandomMixUpV2",
        "cutout: registry (erase.Cutout)"]
    for name, (ours, kornia) in (("crop", rows[:2]), ("mixup", rows[2:4])):
        measured = raw_values(tmp_path / "benchmark_raw.csv", "augmentations", name,
                              "images_per_s")
        assert [(setup, repeat) for setup, repeat, _ in measured] == [
            (setup, repeat) for repeat in range(3) for setup in (ours["setup"], kornia["setup"])]
        speeds = {setup: [value for name, _, value in measured if name == setup]
                  for setup in (ours["setup"], kornia["setup"])}
        for row in (ours, kornia):
            assert (row["section"], row["batch_size"], row["runs"]) == ("augmentations", 8, 3)
            assert row["images_per_s"] == pytest.approx(statistics.median(speeds[row["setup"]]))
        ratios = pair_ratios(speeds[ours["setup"]], speeds[kornia["setup"]])
        assert ours["ratio"] == pytest.approx(statistics.median(ratios))
        assert ours["ratio_unit"] == "x kornia" and "ratio" not in kornia
        assert "conversion timed on this side" in kornia["note"]
    assert "ratio" not in rows[4] and "kornia has no equivalent" in rows[4]["note"]
    header = (tmp_path / "benchmark.md").read_text().splitlines()[0]
    assert "median [min, max] over 3 interleaved runs" in header


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_kornia_mixing_side_returns_soft_targets_like_ours(name):
    torch.manual_seed(0)
    images, labels = augment_speed.batch(16, 32, torch.device("cpu"))
    side = augment_speed.kornia_side(name, build_augmentations([name], 10).augmentations[0], 32)
    out, targets = side(images, labels)
    assert out.dtype == torch.float32 and targets.shape == (16, augment_speed.NUM_CLASSES)
    assert torch.allclose(targets.sum(dim=1), torch.ones(16))
    assert (targets[torch.arange(16), labels] > 0).all()  # each keeps a share of its own


@pytest.mark.slow
def test_overhead_and_time_to_accuracy_over_seeds(image_folder, tmp_path):
    # The tiny folder stands in for CIFAR-10; a 30% target on 4 classes is within reach.
    rows = benchmark.main([
        *TINY, "--models", "mlp", "--no_throughput", "--repeats", "2", "--time_to_52",
        "--target_52", "0.3", "--seeds", "2", "--seed_max_epochs", "2", "--max_epochs", "2",
        "--data.data_dir", str(image_folder), "--out_dir", str(tmp_path)])
    raw = tmp_path / "benchmark_raw.csv"
    overhead, seeds = rows[:2], rows[2:]
    assert [row["setup"] for row in overhead] == ["plain PyTorch loop", "Lightning"]
    plain, lightning = ([v for name, _, v in raw_values(raw, "overhead", "mlp", "images_per_s")
                         if name == setup] for setup in ("plain PyTorch loop", "Lightning"))
    extra = [100 * (p / q - 1) for p, q in zip(plain, lightning, strict=True)]
    assert overhead[1]["ratio"] == pytest.approx(statistics.median(extra))
    assert overhead[1]["ratio_unit"] == "% time per step"

    recipe = "cifar_mlp_fast52.yaml (fast path)"
    assert [row["setup"] for row in seeds] == [
        "seed-style baseline, seed 0", "seed-style baseline, seed 1", "seed-style baseline, mean",
        f"{recipe}, seed 0", f"{recipe}, seed 1", f"{recipe}, mean"]
    times = raw_values(raw, "time to 30%", "mlp", "time_s")
    assert [(setup, repeat) for setup, repeat, _ in times] == [  # interleaved per seed
        ("seed-style baseline", 0), ("cifar_mlp_fast52.yaml", 0),
        ("seed-style baseline", 1), ("cifar_mlp_fast52.yaml", 1)]
    for side in (seeds[:3], seeds[3:]):
        per_seed, mean = side[:2], side[2]
        for row in per_seed:
            assert 0.0 <= row["accuracy"] <= 1.0 and row["time_s"] > 0 and row["runs"] == 1
            reached = row["accuracy"] >= 0.3
            assert ("reached 30% after epoch" in row["note"]) == reached
        for key in ("time_s", "accuracy"):
            values = [row[key] for row in per_seed]
            assert mean[key] == pytest.approx(statistics.mean(values))
            assert mean[f"{key}_std"] == pytest.approx(statistics.stdev(values))
        assert mean["runs"] == 2 and "of 2 seeds" in mean["note"]
    speedups = [seeds[i]["time_s"] / seeds[3 + i]["time_s"] for i in range(2)]
    assert seeds[5]["ratio"] == pytest.approx(statistics.median(speedups))
    assert seeds[5]["ratio_unit"] == "x speed-up"
    assert seeds[0]["device"] == "cpu" and seeds[0]["batch_size"] == 32  # the seeds' setup


@pytest.mark.parametrize(("flags", "message"), [
    (["--time_to_94", "--device", "cpu"], "--time_to_94 runs on a CUDA GPU only"),
    (["--gpu_suite", "--device", "cpu"], "--gpu_suite runs on a CUDA GPU only"),
    (["--time_to_52"], "--time_to_52 needs the real CIFAR-10"),
    (["--cpu_resnet18"], "--cpu_resnet18 needs the real CIFAR-10"),
    (["--time_to_52", "--data.data_dir", "{tmp}/missing"], "CIFAR-10 not found in"),
    (["--device", "gpu0"], "--device gpu0: give cpu, cuda or cuda:N"),
    (["--steps", "0"], "--steps=0 is out of range"),
    (["--repeats", "0"], "--repeats=0 is out of range"),
    (["--time_to_52", "--recipe_52", "nope.yaml", "--data.data_dir", "{tmp}"],
     "no recipe nope.yaml"),
    (["--cpu_resnet18", "--time_to_52"], "--cpu_resnet18 runs its own sections alone; "
                                         "drop --time_to_52"),
    (["--gpu_suite_part", "2"], "--gpu_suite_part goes with --gpu_suite"),
    (["--augmentations", "--no_overhead"], "--augmentations runs its own sections alone; "
                                           "drop --no_overhead"),
    (["--augmentations", "cropp"], "argument --augmentations: invalid choice: 'cropp'"),
    (["--augmentations", "crop", "--augment_steps", "0"], "--augment_steps=0 is out of range"),
    (["--data-dir", "{tmp}"], "unknown flag --data-dir; did you mean --data.data_dir?"),
])
def test_bad_input_ends_in_one_line_before_anything_runs(flags, message, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([*flags, "--out_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {message}") and "\n" not in error
    assert "--data.download" not in error  # the entry points' flag, not the benchmark's
    assert not (tmp_path / "out").exists()


def test_gpu_suite_refuses_anything_but_the_whole_cifar10(image_folder, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.setattr(benchmark_lib, "require_cuda", lambda flag, device: None)
    with pytest.raises(SystemExit):
        benchmark.main(["--gpu_suite", "--device", "cpu", "--data.data_dir", str(image_folder),
                        "--out_dir", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert error == (f"error: {image_folder} holds 96 training and 32 test images; the GPU "
                     f"suite measures the whole CIFAR-10, 50,000 + 10,000: unpack every part "
                     f"(../shared/data/cifar10/extract.sh DEST)")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def tiny_gpu_suite(image_folder, monkeypatch):
    """The GPU suite made to run on a CPU: no CUDA check, the tiny folder as the whole
    data set, tiny step counts."""
    monkeypatch.setattr(benchmark_lib, "require_cuda", lambda flag, device: None)
    monkeypatch.setattr(benchmark_lib, "CIFAR10_IMAGES", {"train": 96, "test": 32})
    return [*TINY, "--gpu_suite", "--device", "cpu", "--repeats", "2", "--seeds", "2",
            "--data.data_dir", str(image_folder)]


@pytest.mark.slow
def test_gpu_suite_part_1_runs_end_to_end(tiny_gpu_suite, tmp_path):
    rows = benchmark.main([*tiny_gpu_suite, "--models", "mlp", "--target_94", "0.3",
                           "--max_epochs", "4", "--out_dir", str(tmp_path)])
    assert [(row["section"], row["model"], row["setup"]) for row in rows] == [
        ("throughput", "mlp", "fast path"), ("throughput", "mlp", "classic path"),
        ("overhead", "mlp", "plain PyTorch loop"), ("overhead", "mlp", "Lightning"),
        *(("time to 30%", "resnet18", f"cifar_resnet18_fast94.yaml, {which}")
          for which in ("seed 0", "seed 1", "mean"))]
    for row in rows[-3:-1]:
        reached = row["accuracy"] >= 0.3
        assert ("reached 30% after epoch" in row["note"]) == reached
        assert ("NOT reached in 4 epochs" in row["note"]) == (not reached)
        # The recipe sets model.flip_tta: its accuracy is reported in its own column.
        assert 0.0 <= row["accuracy_flip_tta"] <= 1.0
    assert rows[-1]["time_s"] == pytest.approx(statistics.mean(r["time_s"] for r in rows[-3:-1]))
    sections = {row["section"] for row in read_csv(tmp_path / "benchmark_raw.csv")}
    assert sections == {"throughput", "overhead", "time to 30%"}


@pytest.mark.slow
def test_gpu_suite_part_2_trains_the_5_minute_recipe_through_the_entry_point(tiny_gpu_suite,
                                                                           tmp_path):
    rows = benchmark.main([*tiny_gpu_suite, "--gpu_suite_part", "2", "--seeds", "1",
                           "--max_epochs", "1", "--out_dir", str(tmp_path)])
    assert [row["setup"] for row in rows] == ["cifar_resnet18_5min.yaml, seed 0",
                                              "cifar_resnet18_5min.yaml, mean"]
    assert 0.0 <= rows[0]["accuracy"] <= 1.0 and 0.0 <= rows[0]["accuracy_flip_tta"] <= 1.0
    assert rows[0]["run_s"] > rows[0]["time_s"] > 0
    assert rows[1]["accuracy_std"] is None  # one seed: no spread
    run = tmp_path / "runs" / "five_min" / "seed0"
    assert "Test accuracy:" in (run / "output.log").read_text()


def test_a_stopped_benchmark_resumes_where_it_stopped(tmp_path, capsys, monkeypatch):
    flags = [*TINY, "--models", "mlp", "--no_overhead", "--pipelines", "fast", "--repeats", "3",
             "--out_dir", str(tmp_path)]
    real_throughput = benchmark_runs.lightning_throughput
    calls = []

    def stopped_at_the_second_run(args, parts):
        calls.append(len(calls))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C, or a kill, during the second run
        return real_throughput(args, parts)

    monkeypatch.setattr(benchmark_runs, "lightning_throughput", stopped_at_the_second_run)
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(flags)
    assert exit_info.value.code == 130
    first = raw_values(tmp_path / "benchmark_raw.csv", "throughput", "mlp", "images_per_s")
    assert [repeat for _, repeat, _ in first] == [0]
    monkeypatch.setattr(benchmark_runs, "lightning_throughput", real_throughput)
    capsys.readouterr()

    rows = benchmark.main([*flags, "--resume"])
    measured = raw_values(tmp_path / "benchmark_raw.csv", "throughput", "mlp", "images_per_s")
    assert [repeat for _, repeat, _ in measured] == [0, 1, 2]
    assert measured[0] == first[0]  # kept, not measured again
    assert rows[0]["runs"] == 3
    assert rows[0]["images_per_s"] == pytest.approx(
        statistics.median(value for _, _, value in measured))
    out = capsys.readouterr().out
    assert "throughput, fast path, seed 0 (run 1): measured earlier" in out
    assert "resumed: 1 of 3 measurements made by the stopped run(s) before" in out


@pytest.mark.parametrize(("change", "message"), [
    (["--steps", "3"], "was started with --steps 2, not 3; rerun its own command with "
                       "--resume, or choose a new --out_dir"),
    (["--warmup_steps", "2"], "was started with --warmup_steps 1, not 2; rerun its own "
                              "command with --resume, or choose a new --out_dir"),
])
def test_resume_refuses_other_settings_in_one_line(change, message, tmp_path, capsys):
    flags = [*TINY, "--models", "mlp", "--no_overhead", "--pipelines", "fast", "--repeats", "1",
             "--out_dir", str(tmp_path)]
    benchmark.main(flags)
    before = (tmp_path / "benchmark_raw.csv").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([*flags, *change, "--resume"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: --resume: the benchmark in {tmp_path} {message}"
    assert (tmp_path / "benchmark_raw.csv").read_text() == before  # nothing lost


def test_resume_refuses_other_recipe_settings_and_an_empty_out_dir(tmp_path, capsys):
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("cifar_mlp.yaml", "cifar_resnet18.yaml"):
        (configs / name).write_text(RECIPES.config(name).read_text())
    recipes = dataclasses.replace(RECIPES, config_dir=configs)
    flags = [*TINY, "--models", "mlp", "--no_overhead", "--pipelines", "fast", "--repeats", "1",
             "--out_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        benchmark_lib.main([*flags, "--resume"], recipes)
    assert capsys.readouterr().err.strip() == (
        f"error: --resume: {tmp_path / 'out'} holds no benchmark to continue (no "
        f"benchmark_settings.json); drop --resume to start one there")
    benchmark_lib.main(flags, recipes)
    text = RECIPES.config("cifar_mlp.yaml").read_text()
    (configs / "cifar_mlp.yaml").write_text(text + "\n# a comment changes no setting\n")
    benchmark_lib.main([*flags, "--resume"], recipes)  # everything measured: read back
    assert "measured earlier" in capsys.readouterr().out
    assert "max_epochs: 20\n" in text
    (configs / "cifar_mlp.yaml").write_text(text.replace("max_epochs: 20\n", "max_epochs: 21\n"))
    with pytest.raises(SystemExit):
        benchmark_lib.main([*flags, "--resume"], recipes)
    assert capsys.readouterr().err.strip().endswith(
        "was started with other settings in the recipe cifar_mlp; rerun its own command "
        "with --resume, or choose a new --out_dir")


def test_a_stopped_entry_point_run_is_measured_again_from_the_start(tmp_path, monkeypatch,
                                                                    capsys):
    stopped = tmp_path / "entry_point_seed1"
    (stopped / "version_0").mkdir(parents=True)
    (stopped / "version_0" / "last.ckpt").write_text("half a run")
    seen = []

    def run_trial(module, name, values, flags, run_dir, isolation):
        seen.append(run_dir.exists())
        raise RuntimeError("stop here")

    monkeypatch.setattr(benchmark_runs, "run_trial", run_trial)
    args = benchmark_lib.parse_args(["--cpu_resnet18", "--data.data_dir", str(tmp_path)])
    args.recipes, args.precision = RECIPES, "32-true"
    with pytest.raises(RuntimeError, match="stop here"):
        benchmark_runs.entry_point_run(args, "resnet18", "cifar_resnet18_cpu.yaml", 1, stopped)
    assert seen == [False]  # the stopped run's folder was cleared before the new run
    assert "stopped part-way by an earlier run of the benchmark; measuring it again" in \
        capsys.readouterr().out


def test_cpu_resnet18_refuses_an_out_dir_holding_earlier_runs(image_folder, tmp_path, capsys):
    earlier = tmp_path / "out" / "runs" / "cpu_resnet18" / "entry_point_seed0"
    earlier.mkdir(parents=True)
    with pytest.raises(SystemExit):
        benchmark.main(["--cpu_resnet18", "--data.data_dir", str(image_folder),
                        "--out_dir", str(tmp_path / "out")])
    assert capsys.readouterr().err.strip() == (
        f"error: {earlier.parent} holds the runs of an earlier benchmark; continue it with "
        f"the same flags and --resume, or choose a new --out_dir")


@pytest.mark.slow
def test_cpu_resnet18_trains_both_ways_per_seed(image_folder, tmp_path):
    rows = benchmark.main([
        "--cpu_resnet18", "--seeds", "2", "--max_epochs", "1", "--batch_size", "16",
        "--resnet_widths", "4", "8", "8", "8", "--data.data_dir", str(image_folder),
        "--out_dir", str(tmp_path)])
    ours, classic = "entry point (Lightning, fast path)", \
        "plain loop, torchvision-style Dataset (classic path)"
    assert [row["setup"] for row in rows] == [
        f"cifar_resnet18_cpu.yaml: {side}, {which}" for side in (ours, classic)
        for which in ("seed 0", "seed 1", "mean")]
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["best_val_accuracy"] <= 1.0
        assert row["run_s"] > row["time_s"] > 0
    times = raw_values(tmp_path / "benchmark_raw.csv", "cpu resnet18", "resnet18", "time_s")
    assert [(setup, repeat) for setup, repeat, _ in times] == [
        (ours, 0), (classic, 0), (ours, 1), (classic, 1)]
    speedups = [times[1][2] / times[0][2], times[3][2] / times[2][2]]
    assert rows[2]["ratio"] == pytest.approx(statistics.median(speedups))
    for seed in (0, 1):  # our side: the entry point's own run folders, one per seed
        run = tmp_path / "runs" / "cpu_resnet18" / f"entry_point_seed{seed}"
        assert "best checkpoint" in (run / "output.log").read_text()
        assert f"seed_everything: {seed}" in (run / "version_0" / "config.yaml").read_text()


def test_classic_side_trains_the_cpu_recipe_as_the_entry_point_parses_it(image_folder,
                                                                        monkeypatch):
    captured = {}

    def fake_train(recipe, data, seed, device, precision, num_workers):
        captured.update(recipe=recipe, data=data, seed=seed, workers=num_workers)
        return classic_loop.ClassicResult(0.5, 0.5, 1, [0.5], 1.0)

    monkeypatch.setattr(benchmark_runs, "train_classic", fake_train)
    args = benchmark_lib.parse_args(["--cpu_resnet18", "--data.data_dir", str(image_folder)])
    args.recipes, args.precision = RECIPES, "32-true"
    benchmark_runs.classic_run(args, "resnet18", args.recipe_cpu, seed=3)
    recipe, data = captured["recipe"], captured["data"]
    # experiments/configs/cifar_resnet18_cpu.yaml, value by value.
    assert recipe.network.resnet_widths == (16, 32, 64, 128) and recipe.network.norm == "batch"
    assert (recipe.optimizer.optimizer, recipe.optimizer.lr, recipe.optimizer.momentum,
            recipe.optimizer.nesterov, recipe.optimizer.weight_decay) == (
        "sgd", 0.2, 0.9, True, 5e-4)
    assert recipe.loss.label_smoothing == 0.1
    assert (recipe.schedule.scheduler, recipe.schedule.onecycle_pct_start) == ("onecycle", 0.25)
    assert (recipe.epochs, recipe.batch_size) == (12, 256)
    crop, flip = recipe.augmentations.augmentations
    assert isinstance(crop, RandomCropWithPadding) and crop.padding == 4
    assert isinstance(flip, RandomHorizontalFlip)
    # The 10% validation split of the 96 tiny training images: 2 of each class's 24.
    assert (len(data.train.labels), len(data.val.labels), len(data.test.labels)) == (88, 8, 32)
    assert captured["seed"] == 3 and captured["workers"] == 2


def test_classic_loop_tests_the_best_weights_by_validation_without_lightning(monkeypatch):
    def no_lightning(*args, **kwargs):
        raise AssertionError("the classic loop must not use a Lightning Trainer")

    monkeypatch.setattr(L.Trainer, "__init__", no_lightning)
    # Validation accuracy 0.2, 0.9, 0.5 after epochs 1-3: the weights after epoch 2 are the
    # ones tested. Each evaluation records a fingerprint of the weights it saw.
    scripted = iter([0.2, 0.9, 0.5, 0.7])  # the 4th is the test
    seen = []

    def fake_accuracy(net, loader, device, precision):
        seen.append(torch.cat([p.detach().flatten() for p in net.parameters()]).clone())
        return next(scripted)

    monkeypatch.setattr(classic_loop, "loader_accuracy", fake_accuracy)
    generator = torch.Generator().manual_seed(0)

    def split(count):
        return ImageSet(torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8,
                                      generator=generator),
                        torch.randint(0, 4, (count,), generator=generator), ["a", "b", "c", "d"])

    recipe = ClassicRecipe(
        network=NetworkSettings(arch="mlp", hidden_widths=(8,)), shape=NetworkShape(4, 3, 8),
        loss=LossSettings(), optimizer=OptimizerSettings(optimizer="sgd", lr=0.1),
        schedule=ScheduleSettings(scheduler="onecycle"),
        augmentations=build_augmentations(["crop", "flip"], 4), epochs=3, batch_size=8,
        eval_batch_size=16)
    data = ClassicData(split(32), split(8), split(8), torch.full((3,), 0.5),
                       torch.full((3,), 0.25))
    result = train_classic(recipe, data, seed=0, device=torch.device("cpu"),
                           precision="32-true", num_workers=0)
    assert (result.val_acc, result.best_epoch, result.best_val_acc) == ([0.2, 0.9, 0.5], 2, 0.9)
    assert result.test_acc == 0.7 and result.train_s > 0
    assert not torch.equal(seen[1], seen[2])  # training changed the weights after epoch 2
    assert torch.equal(seen[3], seen[1])  # and the test saw those of epoch 2


def test_accuracy_with_flip_is_the_mirror_averaged_softmax():
    datamodule, model = tiny_parts()
    datamodule.setup("fit")
    model.eval()
    images, labels = datamodule.test_set.images, datamodule.test_set.labels
    normalized = datamodule.normalize(images)
    with torch.no_grad():
        probs = model(normalized).softmax(-1)
        mirrored = model(normalized.flip(-1)).softmax(-1)
    plain_hits = probs.argmax(-1) == labels
    tta_hits = (probs + mirrored).argmax(-1) == labels
    assert not torch.equal(plain_hits, tta_hits)  # so that the two cannot be mixed up unseen
    plain, tta = timing.accuracies(model, images, labels, datamodule.normalize,
                                   torch.device("cpu"), batch_size=5, with_flip=True)
    assert plain == pytest.approx(plain_hits.float().mean().item())
    assert tta == pytest.approx(tta_hits.float().mean().item())
    assert timing.accuracy(model, images, labels, datamodule.normalize,
                           torch.device("cpu"), batch_size=5) == pytest.approx(plain)


def test_time_to_accuracy_reports_flip_tta_after_each_epoch():
    datamodule, model = tiny_parts()
    datamodule.setup("fit")
    images, labels = datamodule.test_set.images, datamodule.test_set.labels
    clock = TimeToAccuracy(1.1, images, labels, flip_tta=True)  # never reached: 2 epochs
    quiet_trainer(max_epochs=2, callbacks=[clock]).fit(model, datamodule=datamodule)
    assert sorted(clock.flip_tta_accuracy) == [1, 2]
    model.eval()
    plain, tta = timing.accuracies(model, images, labels, datamodule.normalize,
                                   torch.device("cpu"), with_flip=True)
    assert clock.flip_tta_accuracy[2] == pytest.approx(tta)
    assert clock.history[-1][2] == pytest.approx(plain)


# -- the clocks and the plain loop -----------------------------------------------------

def tiny_parts(seed: int = 0):
    """A synthetic data module and a small MLP classifier, without random augmentation or
    dropout, so two runs from the same seed do exactly the same arithmetic."""
    torch.manual_seed(seed)
    datamodule = SyntheticImageDataModule(num_train=64, num_test=16, batch_size=16,
                                          val_fraction=None, augment=[])
    model = ImageClassifier(arch="mlp", hidden_widths=[8], optimizer="adamw", lr=1e-2,
                            scheduler="onecycle")
    return datamodule, model


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     limit_val_batches=0, **kwargs)


def test_plain_loop_trains_exactly_like_lightning():
    # The overhead comparison is fair only if both sides do the same work: same batches,
    # augmentation path, loss, optimizer and schedule, hence the same weights after it.
    datamodule, plain_model = tiny_parts()
    images_per_s = plain_loop_throughput(plain_model, datamodule, torch.device("cpu"),
                                         "32-true", warmup=2, steps=4)
    assert images_per_s > 0
    datamodule, lightning_model = tiny_parts()
    quiet_trainer(max_steps=6).fit(lightning_model, datamodule=datamodule)
    plain, lightning = plain_model.state_dict(), lightning_model.state_dict()
    assert plain.keys() == lightning.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], lightning[name], msg=name)


def test_step_timer_counts_the_measured_steps_and_waits_for_the_device_twice(monkeypatch):
    waits = []
    monkeypatch.setattr(device_clock, "synchronize", lambda device: waits.append(device))
    datamodule, model = tiny_parts()
    timer = StepTimer(warmup=3)
    quiet_trainer(max_steps=8, callbacks=[timer]).fit(model, datamodule=datamodule)
    assert timer.images == 5 * 16  # steps 4..8, the warm-up steps excluded
    assert len(waits) == 2  # end of the warm-up and end of the last step, not every step
    assert timer.images_per_second > 0


def test_time_to_accuracy_keeps_its_test_evaluation_off_the_clock(monkeypatch):
    # Each test evaluation pretends to take 1000 s on the clock the callback reads; the
    # training times must not contain any of it. The accuracy climbs 0.2, 0.4, 0.6, ...
    offset = [0.0]
    evaluations = []

    def fake_accuracies(module, images, labels, normalize, device, **options):
        assert not module.training  # evaluated in eval mode
        evaluations.append(len(labels))
        offset[0] += 1000.0
        return 0.2 * len(evaluations), None

    monkeypatch.setattr(timing, "accuracies", fake_accuracies)
    monkeypatch.setattr(timing.time, "perf_counter",
                        lambda real=time.perf_counter: real() + offset[0])
    datamodule, model = tiny_parts()
    datamodule.setup("fit")
    clock = TimeToAccuracy(0.5, datamodule.test_set.images, datamodule.test_set.labels)
    quiet_trainer(max_epochs=10, callbacks=[clock]).fit(model, datamodule=datamodule)
    assert evaluations == [16, 16, 16]  # the whole test set after each epoch, then stop
    assert [epoch for epoch, _, _ in clock.history] == [1, 2, 3]
    assert clock.reached == clock.history[2] and clock.reached[2] == pytest.approx(0.6)
    seconds = [entry[1] for entry in clock.history]
    assert 0 < seconds[0] < seconds[1] < seconds[2] < 1000
    assert model.training  # handed back to training as it was
