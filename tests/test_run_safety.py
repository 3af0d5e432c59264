"""Runs that cannot mean anything are refused before they start, one run at a time per run
directory, moved runs resume where they are, and nothing of a failed start stays behind."""

import importlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
import yaml

from experiments import cifar_mlp
from src.callbacks.run_estimate import RunEstimate, format_duration
from src.callbacks.signal_notice import SignalNotice
from src.runs.lock import LOCK_FILE, acquire_lock, release_lock
from tests.entry_points import REPO_ROOT

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def tiny(image_folder, *flags: str) -> list[str]:
    return ["--data.data_dir", str(image_folder), "--model.hidden_widths", "[16]",
            "--trainer.max_epochs", "1", *QUIET, *flags]


def one_line_error(capsys, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        cifar_mlp.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "usage:" not in err
    return err


# -- command-line mistakes: one line, the closest flag, no usage dump ---------------------

@pytest.mark.parametrize(("flags", "expected"), [
    (["--model.lrr", "0.1"], "error: unknown flag --model.lrr; did you mean --model.lr? (see "
                             "python -m experiments.cifar_mlp --help)"),
    (["--trainer.max_epohcs", "3"], "error: unknown flag --trainer.max_epohcs; did you mean "
                                    "--trainer.max_epochs?"),
    (["--model.lr", "fast"], "error: --model.lr: Expected a float. Got value: fast"),
    (["--config", "no_such_file.yaml"], "error: --config: File does not exist"),
])
def test_command_line_mistakes_are_one_line(capsys, image_folder, tmp_path, flags, expected):
    err = one_line_error(capsys, tiny(image_folder, "--trainer.default_root_dir",
                                      str(tmp_path), *flags))
    assert err.startswith(expected)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("module", "flags", "expected"), [
    ("evaluate", [], "error: missing checkpoints (see python -m experiments.evaluate --help)"),
    ("evaluate", ["run.ckpt", "--data.batch_sizee", "3"],
     "error: unknown flag --data.batch_sizee; did you mean --data.batch_size?"),
    ("explore_data", ["--samples_per_class", "many"],
     "error: --samples_per_class: Expected a int. Got value: many"),
    ("explore_data", ["--config", "no_such_file.yaml"], "error: --config: File does not exist"),
    ("seeds", ["--base", "cifar_mlp", "--seedz", "3"],
     "error: unknown flag --seedz; did you mean --seeds?"),
    ("sweep", ["spec.yaml", "--max_trialz", "3"],
     "error: unknown flag --max_trialz; did you mean --max_trials?"),
    ("study_optimizer", ["--budget", "huge"], "error: argument --budget: invalid choice"),
])
def test_every_command_reports_parse_mistakes_in_one_line(capsys, module, flags, expected):
    command = importlib.import_module(f"experiments.{module}")
    with pytest.raises(SystemExit) as exit_:
        command.main(flags)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "usage:" not in err and "Traceback" not in err
    assert err.startswith(expected)


@pytest.mark.parametrize(("flags", "expected"), [
    (["--trainer.max_epochs", "0"], "error: nothing to train"),
    (["--trainer.max_steps", "0"], "error: nothing to train"),
    (["--seed_everything", "99999999999"], "error: seed_everything=99999999999 is out of range"),
    (["--trainer.accumulate_grad_batches", "0"],
     "error: trainer.accumulate_grad_batches=0 is out of range"),
    (["--data.val_fraction", "0.99"], "error: no training images left for every class"),
])
def test_runs_that_cannot_mean_anything_are_refused(capsys, image_folder, tmp_path, flags,
                                                    expected):
    err = one_line_error(capsys, tiny(image_folder, "--trainer.default_root_dir",
                                      str(tmp_path / "runs"), *flags))
    assert err.startswith(expected)
    assert not (tmp_path / "runs").exists()  # nothing left behind, even after data loading


def test_a_class_without_training_images_is_refused(capsys, fresh_image_folder, tmp_path):
    for extra in sorted((fresh_image_folder / "train" / "class3").iterdir())[1:]:
        extra.unlink()  # one image left, which a 0.9 validation split takes
    err = one_line_error(capsys, tiny(fresh_image_folder, "--data.val_fraction", "0.9",
                                      "--trainer.default_root_dir", str(tmp_path / "runs")))
    assert err.startswith("error: no training images left for class 'class3' (1 image(s)")


def test_nan_in_a_config_file_is_refused(capsys, image_folder, tmp_path):
    config = tmp_path / "nan.yaml"
    config.write_text(yaml.safe_dump({"data": {"val_fraction": float("nan")}}))
    err = one_line_error(capsys, tiny(image_folder, "--config", str(config),
                                      "--trainer.default_root_dir", str(tmp_path / "runs")))
    assert err == "error: --data.val_fraction=nan is not a finite number; give a real value"
    config.write_text(yaml.safe_dump({"model": {"weight_decay": float("inf")}}))
    err = one_line_error(capsys, tiny(image_folder, "--config", str(config),
                                      "--trainer.default_root_dir", str(tmp_path / "runs")))
    assert err.startswith("error: --model.weight_decay=inf is not a finite number")


@pytest.mark.parametrize(("flags", "which"), [
    (["--trainer.limit_val_batches", "0"], "final weights (no checkpoint was saved"),
    (["--trainer.fast_dev_run", "true"], "final weights (no checkpoint was saved"),
    (["--data.val_fraction", "null"], "final weights (no validation set"),
])
def test_runs_too_short_to_select_test_their_final_weights_and_say_so(
        capsys, image_folder, tmp_path, flags, which):
    results = cifar_mlp.main(tiny(image_folder, "--trainer.default_root_dir", str(tmp_path),
                                  *flags))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("Test accuracy: ") and which in line
    assert "test/acc" in results


# -- one run at a time per run directory ----------------------------------------------------

def test_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
    lock = acquire_lock(tmp_path)
    with pytest.raises(Exception, match=f"is in use by process {os.getpid()}"):
        acquire_lock(tmp_path)
    release_lock(lock)
    assert not lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / LOCK_FILE).write_text(f"{dead.stdout.strip()} {socket.gethostname()}\n")
    lock = acquire_lock(tmp_path)  # the process that held it has ended
    assert lock.read_text().split()[0] == str(os.getpid())
    release_lock(lock)


def test_a_second_run_in_a_locked_run_directory_is_refused(capsys, image_folder, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_FILE).write_text(f"{holder.pid} {socket.gethostname()}\n")
        for extra in ([], ["--resume", "true"]):
            err = one_line_error(capsys, tiny(image_folder, "--run_dir", str(run), *extra))
            assert err.startswith(f"error: run directory {run} is in use by process "
                                  f"{holder.pid}")
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    cifar_mlp.main(tiny(image_folder, "--run_dir", str(run)))  # its holder is gone now
    assert not (run / LOCK_FILE).exists()  # released at the end


@pytest.mark.slow
def test_two_runs_started_at_once_in_one_directory_give_one_run(image_folder, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.cifar_mlp",
               *tiny(image_folder, "--run_dir", str(run), "--trainer.max_epochs", "2")]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    processes = [subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in processes)
    (ok, _), (refused, err) = outcomes
    assert (ok, refused) == (0, 2)
    assert ("is in use by process" in err or "already holds a run" in err)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len([row for row in rows if row.startswith("epoch")]) == 1  # one header: one run


def test_a_moved_run_resumes_where_it_now_is(capsys, image_folder, tmp_path):
    first = tmp_path / "first"
    cifar_mlp.main(tiny(image_folder, "--run_dir", str(first), "--trainer.max_epochs", "2",
                        "--trainer.limit_train_batches", "1", "--early_stopping.patience", "9"))
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    last = moved / "checkpoints" / "last.ckpt"
    (moved / "checkpoints" / ".last.ckpt.12345.tmp").write_bytes(b"half a checkpoint")
    cifar_mlp.main(["--config", str(moved / "config.yaml"), "--resume", "true",
                    "--trainer.max_epochs", "2"])
    assert not first.exists()  # not started afresh in the old place
    assert last.is_file() and not list(moved.glob("checkpoints/.*.tmp"))  # leftovers cleaned
    line = capsys.readouterr().out.strip().splitlines()[-1]
    best = next((moved / "checkpoints").glob("best-*.ckpt"))
    assert line.startswith("Test accuracy: ") and f"best checkpoint {best} (val/acc " in line


def test_a_late_input_error_leaves_no_run_folder(capsys, fresh_image_folder, tmp_path):
    broken = sorted((fresh_image_folder / "train" / "class1").iterdir())[0]
    broken.write_bytes(b"not a png")  # found only when the images are decoded
    err = one_line_error(capsys, tiny(fresh_image_folder, "--trainer.default_root_dir",
                                      str(tmp_path / "runs")))
    assert err.startswith("error: cannot decode image")
    assert not (tmp_path / "runs").exists()


# -- time said up front; Ctrl-C answered at once --------------------------------------------

def test_the_run_time_is_estimated_before_training(capsys, image_folder, tmp_path):
    cifar_mlp.main(tiny(image_folder, "--trainer.default_root_dir", str(tmp_path),
                        "--trainer.max_epochs", "3"))
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("Estimated time:"))
    assert "for 3 epoch(s) on this machine (cpu:" in line
    # 24 images per class, 10% of them (2 per class) held out for validation.
    assert "per epoch of 88 training and 8 validation images" in line


def test_a_long_cpu_run_points_to_quicker_commands(capsys, monkeypatch, image_folder,
                                                  tmp_path):
    # 100 s per image: 88 training images make an epoch of 2.5 h.
    monkeypatch.setattr(RunEstimate, "seconds_per_training_image", lambda *args: 100.0)
    cifar_mlp.main(tiny(image_folder, "--trainer.default_root_dir", str(tmp_path),
                        "--trainer.max_steps", "1"))
    out = capsys.readouterr().out
    assert "That is long on a CPU. Quicker: add --data.subset_per_class 500" in out
    assert format_duration(3 * 3600 + 20 * 60) == "3 h 20 min"


def test_ctrl_c_is_answered_while_the_main_thread_is_busy(capsys):
    notice = SignalNotice("runs/x/checkpoints/last.ckpt")
    said: list[float] = []
    notice._say = lambda text: said.append(time.monotonic())
    previous = signal.signal(signal.SIGINT, lambda *args: None)  # the deferred handler
    # Orthogonal: its powers keep unit scale (no overflow, no slow denormal numbers).
    matrix = torch.linalg.qr(torch.randn(1500, 1500)).Q
    # Size the busy call to about 1.5 s on this machine: a fixed count of squarings took
    # 0.46 s on a faster CI machine, too short to tell "during" from "after".
    calibration_start = time.monotonic()
    torch.linalg.matrix_power(matrix, 2 ** 4)  # 4 squarings
    seconds_per_squaring = (time.monotonic() - calibration_start) / 4
    squarings = min(62, max(8, math.ceil(1.5 / seconds_per_squaring)))  # 2**62 fits int64
    notice.start()
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        # One long C++ call, like a training step: Python's own handler waits for its end.
        torch.linalg.matrix_power(matrix, 2 ** squarings)
        busy_until = time.monotonic()
    finally:
        notice.stop()
        signal.signal(signal.SIGINT, previous)
    assert busy_until - started > 0.5  # else the call was too short to show anything
    assert len(said) == 1 and said[0] < busy_until  # answered during the call
