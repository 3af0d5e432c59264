"""experiments.benchmark runs on a CPU with tiny settings and writes its table.
Correctness only: no timing is asserted."""

import csv
import statistics
import time

import lightning as L
import pytest
import torch

from experiments import RECIPES, benchmark
from src.benchmark import timing
from src.benchmark.plain_loop import plain_loop_throughput
from src.benchmark.timing import StepTimer, TimeToAccuracy
from src.cli import benchmark as benchmark_lib
from src.core import clock as device_clock
from src.datamodules.synthetic import SyntheticImageDataModule
from src.modules.classifier import ImageClassifier

TINY = ["--steps", "3", "--warmup-steps", "5", "--train-images", "128", "--batch-size", "16",
        "--resnet-widths", "4", "8", "8", "8", "--mlp-widths", "8", "--num-workers", "1"]


def read_csv(path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_throughput_of_both_paths_and_models(tmp_path, capsys):
    rows = benchmark.main([*TINY, "--no-overhead", "--out", str(tmp_path)])
    assert [(row["model"], row["setup"]) for row in rows] == [
        ("resnet18", "fast path"), ("resnet18", "classic path"),
        ("mlp", "fast path"), ("mlp", "classic path")]
    for row in rows:
        assert row["images_per_s"] > 0 and row["epoch_s"] == pytest.approx(
            50_000 / row["images_per_s"])
        assert (row["batch_size"], row["device"], row["precision"]) == (16, "cpu", "32-true")
    assert rows[0]["ratio"].endswith("x classic") and "ratio" not in rows[1]
    written = read_csv(tmp_path / "benchmark.csv")
    assert [row["setup"] for row in written] == [row["setup"] for row in rows]
    markdown = (tmp_path / "benchmark.md").read_text()
    assert "| images/s |" in markdown and "CPU cores" in markdown.splitlines()[0]
    assert "| resnet18 | classic path |" in capsys.readouterr().out


def test_overhead_and_time_to_accuracy_on_image_folders(image_folder, tmp_path):
    # The tiny folder stands in for CIFAR-10; a 50% target on 4 classes (chance: 25%) is
    # within reach of both MLPs in 2 epochs (after 1 epoch: 97% and 75%).
    rows = benchmark.main([
        *TINY, "--models", "mlp", "--no-throughput", "--time-to-52", "--target-52", "0.5",
        "--seed-max-epochs", "2", "--recipe-max-epochs", "2", "--data-dir", str(image_folder),
        "--out", str(tmp_path)])
    setups = [row["setup"] for row in rows]
    assert setups == ["plain PyTorch loop", "Lightning", "seed-style baseline",
                      "cifar_mlp_fast52.yaml (fast path)"]
    assert rows[1]["ratio"].endswith("% time per step")
    for row in rows[2:]:
        assert 0.5 <= row["accuracy"] <= 1.0 and row["time_s"] > 0
        assert "reached 50% after epoch" in row["note"] and "NOT reached" not in row["note"]
    assert len(read_csv(tmp_path / "benchmark.csv")) == 4


@pytest.mark.parametrize(("flags", "message"), [
    (["--time-to-94", "--device", "cpu"], "--time-to-94 trains the ResNet18 recipe"),
    (["--time-to-52"], "--time-to-52 and --time-to-94 need the real CIFAR-10"),
    (["--time-to-52", "--data-dir", "{tmp}/missing"], "CIFAR-10 not found in"),
    (["--device", "gpu0"], "--device gpu0: give cpu, cuda or cuda:N"),
    (["--steps", "0"], "--steps=0 is out of range"),
    (["--time-to-52", "--recipe-52", "nope.yaml", "--data-dir", "{tmp}"], "no recipe nope.yaml"),
])
def test_bad_input_ends_in_one_line_before_anything_runs(flags, message, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([*flags, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {message}") and "\n" not in error
    assert "--data." not in error  # the training entry points' flags do not exist here
    assert not (tmp_path / "out").exists()


def test_time_to_94_rows_per_seed_mean_and_flip_tta(image_folder, tmp_path):
    # --time-to-94 is refused on a CPU (days of training), so its rows are built here
    # directly, on the tiny folder with a tiny ResNet18 and a target within reach.
    args = benchmark_lib.parse_args([
        "--device", "cpu", "--precision", "32-true", "--batch-size", "16",
        "--resnet-widths", "4", "8", "8", "8", "--target-94", "0.3", "--seeds", "2",
        "--data-dir", str(image_folder), "--out", str(tmp_path)])
    args.recipes = RECIPES
    rows = benchmark_lib.time_to_94_rows(args)
    seeds, mean = rows[:2], rows[2:]
    assert [row["setup"] for row in seeds] == ["cifar_resnet18_fast94.yaml seed 0",
                                               "cifar_resnet18_fast94.yaml seed 1"]
    for row in seeds:
        assert "reached 30% after epoch" in row["note"]  # seeded: both get there on a CPU
        assert row["time_s"] > 0 and 0.3 <= row["accuracy"] <= 1.0
        # The recipe sets model.flip_tta: its accuracy is reported in its own column, above
        # chance (0.25) as the plain one (both 0.5 here); what it averages is pinned in
        # test_evaluation.py::test_flip_tta_averages_probabilities_not_logits.
        assert 0.3 <= row["accuracy_flip_tta"] <= 1.0
    times = [row["time_s"] for row in seeds]
    assert [row["setup"] for row in mean] == ["cifar_resnet18_fast94.yaml mean"]
    assert mean[0]["time_s"] == pytest.approx(statistics.mean(times))
    assert mean[0]["note"] == (f"mean +- std {statistics.mean(times):.1f} +- "
                               f"{statistics.stdev(times):.1f} s over the 2 of 2 seeds "
                               f"that reached the target")


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
