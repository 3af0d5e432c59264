"""Resume and reproducibility, end to end on a tiny MLP (deterministic, CPU).

A run stopped at any point (SIGTERM, Ctrl-C, SIGKILL) and resumed with `--resume true`
must end with the same validation/test metrics and the same weights as an unbroken run;
two runs with the same seed must be bit-identical.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from experiments import cifar_mlp
from src.modules import ImageClassifier
from src.runs.checkpoints import CheckpointError, check_checkpoint_fits, read_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 6  # 86 training images (96 minus a 10% validation split) in batches of 16
MAX_EPOCHS = 4


def run_args(folder: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["--data.data_dir", str(folder), "--data.batch_size", "16",
            "--model.hidden_widths", "[16]", "--trainer.max_epochs", str(MAX_EPOCHS),
            "--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--save_every_n_steps", "2",
            "--run_dir", str(run_dir), *extra]


def eval_metrics(run_dir: Path) -> dict[tuple[str, str], float]:
    """Validation and test metrics from metrics.csv, keyed by (epoch, name); each once."""
    metrics = {}
    with open(run_dir / "metrics.csv") as file:
        for row in csv.DictReader(file):
            for name, value in row.items():
                if value and name.startswith(("val/", "test/")):
                    assert (row["epoch"], name) not in metrics, "metric logged twice"
                    metrics[(row["epoch"], name)] = float(value)
    return metrics


def logged_values(run_dir: Path) -> list[dict[str, str]]:
    """Every row of metrics.csv, as logged, without the wall-clock columns (time/*)."""
    with open(run_dir / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows and "time/train_epoch_s" in rows[0]
    return [{name: value for name, value in row.items() if not name.startswith("time/")}
            for row in rows]


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def assert_same_run(run_dir: Path, reference: Path) -> None:
    expected, actual = eval_metrics(reference), eval_metrics(run_dir)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-6), key
    expected_weights = last_checkpoint(reference)["state_dict"]
    actual_weights = last_checkpoint(run_dir)["state_dict"]
    for name, tensor in expected_weights.items():
        torch.testing.assert_close(actual_weights[name], tensor, rtol=0, atol=1e-6)


def exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as stopped:
        cifar_mlp.main(args)
    return stopped.value.code


def report(captured_err: str) -> str:
    """The command line's own report: exactly one line, and no traceback."""
    assert "Traceback" not in captured_err
    lines = [line for line in captured_err.splitlines()
             if line.startswith(("error:", "stopped:"))]
    assert len(lines) == 1, captured_err
    return lines[0]


class SignalAtStep(L.Callback):
    """Send this process `signal_name` when training step `step` starts (tests only)."""

    def __init__(self, signal_name: str, step: int):
        self.signal_name = signal_name
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal_name))


def signal_flag(signal_name: str, step: int) -> str:
    init = json.dumps({"class_path": "test_resume.SignalAtStep",
                       "init_args": {"signal_name": signal_name, "step": step}})
    return f"--trainer.callbacks+={init}"


@pytest.fixture(scope="module")
def deterministic_mode():
    yield
    torch.use_deterministic_algorithms(False)  # Lightning leaves it on for the process


@pytest.fixture(scope="module")
def reference_run(image_folder, tmp_path_factory, deterministic_mode) -> Path:
    """An unbroken run that the interrupted ones are compared with (do not modify)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    cifar_mlp.main(run_args(image_folder, run_dir))
    return run_dir


def test_two_runs_with_the_same_seed_are_bit_identical(image_folder, reference_run, tmp_path):
    run_dir = tmp_path / "again"
    cifar_mlp.main(run_args(image_folder, run_dir))
    assert logged_values(run_dir) == logged_values(reference_run)
    expected = last_checkpoint(reference_run)["state_dict"]
    actual = last_checkpoint(run_dir)["state_dict"]
    assert all(torch.equal(actual[name], tensor) for name, tensor in expected.items())


@pytest.mark.parametrize("signal_name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_mid_epoch_saves_then_resume_matches_unbroken_run(
        signal_name, code, image_folder, reference_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = run_args(image_folder, run_dir, signal_flag(signal_name, step=8))
    assert exit_code(args) == code
    message = report(capsys.readouterr().err)
    # Step 9 ends mid-epoch 1: saved there, not at the previous every-2-steps checkpoint.
    assert message.startswith(f"stopped: {signal_name} received: stopped at step 9 (epoch 1)")
    assert last_checkpoint(run_dir)["global_step"] == 9
    rows_before = eval_metrics(run_dir)
    assert set(rows_before) == {("0", "val/acc"), ("0", "val/loss")}

    cifar_mlp.main([*args, "--resume", "true"])
    assert_same_run(run_dir, reference_run)  # metrics.csv appended, each metric once
    record = json.loads((run_dir / "run_info.json").read_text())
    assert record["resumes"][0]["checkpoint"] == str(run_dir / "checkpoints" / "last.ckpt")


def test_sigterm_at_the_end_of_an_epoch_stops_after_its_validation(
        image_folder, reference_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    last_step_of_epoch_1 = 2 * STEPS_PER_EPOCH - 1  # signal while it runs
    args = run_args(image_folder, run_dir, signal_flag("SIGTERM", last_step_of_epoch_1))
    assert exit_code(args) == 143
    assert "stopped after epoch 1" in report(capsys.readouterr().err)
    assert last_checkpoint(run_dir)["global_step"] == 2 * STEPS_PER_EPOCH
    assert ("1", "val/acc") in eval_metrics(run_dir)
    cifar_mlp.main([*args, "--resume", "true"])
    assert_same_run(run_dir, reference_run)


def test_resuming_a_run_that_stopped_early_trains_no_further(image_folder, tmp_path):
    run_dir = tmp_path / "run"
    # min_delta 10: no epoch after the first counts as an improvement, so it stops after 2.
    args = run_args(image_folder, run_dir, "--early_stopping.patience", "0",
                    "--early_stopping.min_delta", "10")
    cifar_mlp.main(args)
    assert last_checkpoint(run_dir)["global_step"] == 2 * STEPS_PER_EPOCH
    cifar_mlp.main([*args, "--resume", "true"])
    assert last_checkpoint(run_dir)["global_step"] == 2 * STEPS_PER_EPOCH
    assert {epoch for epoch, name in eval_metrics(run_dir) if name == "val/acc"} == {"0", "1"}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_unbroken_run(image_folder, reference_run,
                                                            tmp_path):
    run_dir = tmp_path / "run"
    args = run_args(image_folder, run_dir)
    process = subprocess.Popen([sys.executable, "-m", "experiments.cifar_mlp", *args],
                               cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    step = 0
    try:  # kill as soon as a mid-epoch checkpoint exists (written atomically: readable)
        while process.poll() is None and not (step % STEPS_PER_EPOCH):
            if last.exists():
                step = torch.load(last, weights_only=True)["global_step"]
            time.sleep(0.01)
        process.kill()
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert step % STEPS_PER_EPOCH != 0

    cifar_mlp.main([*args, "--resume", "true"])
    assert_same_run(run_dir, reference_run)


def test_resume_refuses_other_settings(image_folder, reference_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    args = run_args(image_folder, run_dir, "--resume", "true", "--model.lr", "0.5")
    assert exit_code(args) == 2
    assert "model.lr: 0.002 then, 0.5 now" in report(capsys.readouterr().err)


def file_snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*")}


def test_refuses_a_run_dir_that_holds_another_run(image_folder, reference_run, capsys):
    before = file_snapshot(reference_run)
    assert exit_code(run_args(image_folder, reference_run)) == 2
    error = report(capsys.readouterr().err)
    assert "already holds a run" in error and "--resume true" in error
    assert exit_code(run_args(image_folder, reference_run, "--resume", "true",
                              "--overwrite", "true")) == 2
    assert file_snapshot(reference_run) == before  # nothing written, nothing deleted


def test_overwrite_replaces_only_the_old_run(image_folder, reference_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "checkpoints" / "best-epoch999.ckpt").write_bytes(b"stale")
    cifar_mlp.main(run_args(image_folder, run_dir, "--overwrite", "true",
                            "--trainer.max_epochs", "1"))
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert not (run_dir / "checkpoints" / "best-epoch999.ckpt").exists()
    assert {row[0] for row in eval_metrics(run_dir)} == {"0", "1"}  # epoch 0, then test


def test_resume_from_a_truncated_checkpoint_fails_in_one_line(image_folder, reference_run,
                                                             tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    assert exit_code(run_args(image_folder, run_dir, "--resume", "true")) == 2
    assert f"{last} is not a readable checkpoint" in report(capsys.readouterr().err)


NAN_LOSS = (r"error: training loss is nan at step (\d+), epoch 0, learning rate 1e\+08; "
            r"training stopped \(last good checkpoint: (\S+)\)\. Try a lower learning rate\.")
NON_FINITE_WEIGHTS = (r"error: weights became non-finite \(\S+\) at step (\d+), epoch 0, "
                      r"learning rate 1e\+08; training stopped without saving them \(last good "
                      r"checkpoint: (\S+)\)\. Try a lower learning rate\.")


@pytest.mark.parametrize("log_every_n_steps, expected", [
    # The loss is read on logging steps: logging every step catches it at the first NaN.
    (1, NAN_LOSS),
    # Logging every 50 steps leaves the loss unread when the weights overflow: the checkpoint
    # due at that step must refuse them and keep the previous one.
    (50, NON_FINITE_WEIGHTS),
])
def test_divergence_stops_in_one_line_and_keeps_the_last_good_checkpoint(
        image_folder, tmp_path, capsys, deterministic_mode, log_every_n_steps, expected):
    run_dir = tmp_path / "run"
    args = run_args(image_folder, run_dir, "--model.optimizer", "sgd", "--model.lr", "1e8",
                    "--model.scheduler", "constant", "--save_every_n_steps", "1",
                    "--trainer.log_every_n_steps", str(log_every_n_steps))
    assert exit_code(args) == 1
    error = report(capsys.readouterr().err)
    match = re.fullmatch(expected, error)
    assert match, error
    saved = last_checkpoint(run_dir)
    assert match.group(2) == str(run_dir / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == int(match.group(1)) - 1
    assert all(torch.isfinite(tensor).all() for tensor in saved["state_dict"].values())


def test_run_record_names_the_commit_seed_and_split(reference_run):
    record = json.loads((reference_run / "run_info.json").read_text())
    assert record["seed"] == "0"
    assert record["packages"]["lightning"] == L.__version__
    if (REPO_ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", record["git_commit"])
    split = torch.load(reference_run / "data_split.pt", weights_only=True)
    assert len(split["train"]) == record["data"]["num_train"]
    config = (reference_run / "config.yaml").read_text()
    assert f"run_dir: {reference_run}" in config and "seed_everything: 0" in config


def test_load_from_checkpoint_is_weights_only_and_checks_the_network(reference_run):
    path = reference_run / "checkpoints" / "last.ckpt"
    model = ImageClassifier.load_from_checkpoint(path, weights_only=True)
    assert tuple(model.hparams.hidden_widths) == (16,)
    with pytest.raises(CheckpointError, match=r"\(num_classes=4 there, 7 here\)"):
        ImageClassifier.load_from_checkpoint(path, weights_only=True, num_classes=7)
    other = ImageClassifier(arch="mlp", num_classes=7, hidden_widths=(16,))
    with pytest.raises(CheckpointError, match=r"a different network \(num_classes=4 there, "
                                              r"7 here\)"):
        check_checkpoint_fits(read_checkpoint(path), other, path)


@pytest.mark.slow
def test_wandb_offline_run_is_resumed_under_the_same_id(image_folder, tmp_path, monkeypatch,
                                                        deterministic_mode):
    monkeypatch.setenv("WANDB_MODE", "offline")
    root = tmp_path / "runs"
    args = [*run_args(image_folder, tmp_path / "unused"), "--run_dir", "null",
            "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "1",
            "--wandb.enabled", "true"]
    cifar_mlp.main(args)
    cifar_mlp.main([*args, "--resume", "true"])  # no --run_dir: the newest version_N
    run_dir = root / "version_0"
    assert not (root / "version_1").exists()
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    offline_runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert offline_runs and {path.name.rsplit("-", 1)[1] for path in offline_runs} == {run_id}
    record = json.loads((run_dir / "run_info.json").read_text())
    assert len(record["resumes"]) == 1
