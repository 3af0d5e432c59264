"""Entry points: each recipe runs through its LightningCLI, flags and config files work."""

import csv
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from experiments import cifar_mlp, cifar_resnet18, fashion_mnist_mlp
from src.modules import ImageClassifier
from tests.checks import (
    assert_results_are_those_of,
    assert_tested_checkpoint,
    best_checkpoint,
    evaluate_by_hand,
    printed_checkpoint,
    read_image_folder,
    record_runs,
)
from tests.conftest import write_image_folder

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def gray_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("gray"), 8, 4, size=28, channels=1)


@pytest.mark.parametrize("entry_point, extra", [
    (cifar_resnet18, ["--model.resnet_widths", "[4,8,8,8]"]),
    (cifar_mlp, ["--model.hidden_widths", "[16]"]),
])
def test_cifar_entry_points_fast_dev_run(entry_point, extra, image_folder, tmp_path,
                                         monkeypatch, capsys):
    runs = record_runs(monkeypatch)
    results = entry_point.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "8",
        "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", str(tmp_path),
        *QUIET, *extra,
    ])
    # fast_dev_run saves no checkpoint: the test figures are those of the final weights,
    # and the printed line says so (there is a validation set: that is not the reason).
    assert_results_are_those_of(results, runs[0].model, image_folder)
    assert "; final weights (no checkpoint was saved, so there was none to select))" in \
        capsys.readouterr().out


def test_fashion_mnist_entry_point_fast_dev_run(gray_folder, tmp_path, monkeypatch):
    runs = record_runs(monkeypatch)
    results = fashion_mnist_mlp.main([
        "--data.data_dir", str(gray_folder), "--data.batch_size", "8",
        "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", str(tmp_path), *QUIET,
    ])
    assert_results_are_those_of(results, runs[0].model, gray_folder)


def test_full_run_saves_config_checkpoints_logs_and_prints_test_accuracy(
        image_folder, tmp_path, capsys):
    root = tmp_path / "runs"
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root),
        "--model.hidden_widths", "[16]", "--model.lr", "0.005",
        "--trainer.log_every_n_steps", "1", *QUIET,
    ])
    run = root / "version_0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["lr"] == 0.005 and config["data"]["data_dir"] == str(image_folder)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(n.startswith("best-epoch") for n in checkpoints)
    metrics = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_step", "val/acc", "val/loss", "test/acc", "lr"} <= set(metrics)
    assert (run / "run_info.json").is_file() and (run / "data_split.pt").is_file()
    out = capsys.readouterr()
    line = next(x for x in out.out.splitlines() if x.startswith("Test accuracy:"))
    assert f"{100 * results['test/acc']:.2f}%" in line and "best checkpoint" in line
    # The tested weights are the best checkpoint's, and they learned the 4 classes.
    accuracy = assert_tested_checkpoint(results, best_checkpoint(run), image_folder)
    assert accuracy >= 0.75  # 4 well separated classes (chance: 0.25)


def test_final_test_uses_the_best_checkpoint_and_prints_its_path(image_folder, tmp_path,
                                                                 capsys, monkeypatch):
    epochs = 3

    def zero_the_head_before_the_last_validation(self):
        # The last epoch then validates (and ends with) weights that give every image
        # class 0: val/acc drops to chance, so the best checkpoint is an earlier epoch's.
        if not self.trainer.sanity_checking and self.current_epoch == epochs - 1:
            with torch.no_grad():
                self.net.head.weight.zero_()
                self.net.head.bias.zero_()

    monkeypatch.setattr(ImageClassifier, "on_validation_epoch_start",
                        zero_the_head_before_the_last_validation)
    root = tmp_path / "runs"
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(root),
        "--model.hidden_widths", "[16]", "--trainer.log_every_n_steps", "1", *QUIET,
    ])
    run = root / "version_0"
    best = best_checkpoint(run)
    assert best.name != f"best-epoch{epochs - 1:03d}.ckpt"
    # The printed line names that file, with the best val/acc of the run.
    printed = capsys.readouterr().out
    assert printed_checkpoint(printed) == best
    with open(run / "metrics.csv") as file:
        val_acc = [float(row["val/acc"]) for row in csv.DictReader(file) if row["val/acc"]]
    assert len(val_acc) == epochs and max(val_acc) > val_acc[-1]
    assert f"(val/acc {max(val_acc):.4f})" in printed
    # test/acc and test/loss are those of the best checkpoint's weights ...
    accuracy = assert_tested_checkpoint(results, best, image_folder)
    # ... not of the last weights (last.ckpt, written after the last validation).
    last = ImageClassifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt",
                                                map_location="cpu", weights_only=True)
    assert torch.count_nonzero(last.net.head.weight) == 0
    last_accuracy, _ = evaluate_by_hand(last, *read_image_folder(image_folder))
    assert last_accuracy == 0.25 and accuracy > 0.5


def test_no_validation_split_tests_the_final_weights(image_folder, tmp_path, capsys):
    cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.val_fraction", "null",
        "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path),
        "--model.hidden_widths", "[8]", *QUIET,
    ])
    out = capsys.readouterr()
    assert "final weights (no validation set" in out.out + out.err


def test_config_file_and_flags_layer_over_the_recipe(image_folder, tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"hidden_widths": [12], "optimizer": "adam", "lr": 0.01},
        "trainer": {"max_epochs": 1, "default_root_dir": str(tmp_path / "runs")},
        "data": {"data_dir": str(image_folder), "batch_size": 32},
    }))
    cifar_mlp.main(["--config", str(config), "--model.lr", "0.02", *QUIET])
    saved = yaml.safe_load((tmp_path / "runs" / "version_0" / "config.yaml").read_text())
    assert saved["model"]["optimizer"] == "adam" and saved["model"]["lr"] == 0.02
    assert saved["model"]["hidden_widths"] == [12] and saved["data"]["batch_size"] == 32
    assert saved["model"]["norm"] == "batch"  # from the recipe, untouched


def test_bf16_mixed_precision_runs_on_cpu(image_folder, tmp_path, monkeypatch):
    runs = record_runs(monkeypatch)
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--trainer.precision", "bf16-mixed",
        "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", str(tmp_path),
        "--model.hidden_widths", "[8]", *QUIET,
    ])
    assert_results_are_those_of(results, runs[0].model, image_folder, precision="bf16-mixed")


@pytest.mark.parametrize(("module", "in_a_process_of_its_own"), [
    ("cifar_resnet18", True),  # the main job exactly as typed; the others in this process
    ("cifar_mlp", False), ("fashion_mnist_mlp", False)])
def test_print_config_shows_the_recipe(module, in_a_process_of_its_own, capsys):
    if in_a_process_of_its_own:
        out = subprocess.run([sys.executable, "-m", f"experiments.{module}", "--print_config"],
                             cwd=REPO, capture_output=True, text=True, timeout=120,
                             check=True).stdout
    else:
        with pytest.raises(SystemExit) as exit_:
            importlib.import_module(f"experiments.{module}").main(["--print_config"])
        assert exit_.value.code in (0, None)
        out = capsys.readouterr().out
    config = yaml.safe_load(out)
    recipe = yaml.safe_load((REPO / "experiments" / "configs" / f"{module}.yaml").read_text())
    assert config["model"]["arch"] == recipe["model"]["arch"]
    assert config["trainer"]["max_epochs"] == recipe["trainer"]["max_epochs"]
    assert {"checkpoint", "early_stopping", "lr_monitor", "wandb", "data"} <= set(config)


def test_bad_name_gives_one_line_and_exit_2_without_traceback(image_folder, tmp_path, capsys):
    # In this process; tests/test_bad_input.py runs the same kind of mistake as a command.
    root = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_:
        cifar_mlp.main(["--model.norm", "bathc", "--data.data_dir", str(image_folder),
                        "--trainer.default_root_dir", str(root)])
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown norm 'bathc'; "
                      "choose one of: batch, group, instance, layer, none"]
    assert not root.exists()
