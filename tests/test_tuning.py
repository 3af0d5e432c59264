"""--tune.*: the learning-rate range test and the batch-size search (Lightning's Tuner)."""

import math

import pytest
import torch
import yaml

from experiments import cifar_mlp
from src.cli.tuning import debias_lr_finder_losses, steepest_descent

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def tiny_run(image_folder, root, *flags):
    return [
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--model.hidden_widths", "[16]", "--trainer.default_root_dir", str(root), *QUIET,
        *flags,
    ]


def test_lr_find_prints_a_suggestion_saves_the_curve_and_trains_nothing(
        image_folder, tmp_path, capsys):
    result = cifar_mlp.main(tiny_run(image_folder, tmp_path, "--tune.lr_find", "true",
                                     "--tune.lr_find_steps", "20", "--tune.min_lr", "1e-5"))
    assert result is None  # without --tune.apply nothing is trained
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("Suggested learning rate:"))
    suggestion = float(line.split()[3])
    assert 1e-5 <= suggestion <= 1.0
    run = tmp_path / "version_0"
    png = (run / "lr_find.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    tuned = yaml.safe_load((run / "tuned.yaml").read_text())
    assert tuned == {"model": {"lr": pytest.approx(suggestion, rel=1e-2)}}
    assert not (run / "checkpoints").exists() and not (run / "metrics.csv").exists()


def test_batch_size_and_lr_found_are_applied_and_recorded(image_folder, tmp_path, capsys):
    cifar_mlp.main(tiny_run(image_folder, tmp_path, "--tune.batch_size_find", "true",
                            "--tune.lr_find", "true", "--tune.lr_find_steps", "15",
                            "--tune.apply", "true", "--trainer.max_epochs", "1"))
    out = capsys.readouterr().out
    found = int(next(x for x in out.splitlines() if x.startswith("Batch size found:")).split()[3])
    lr = float(next(x for x in out.splitlines()
                    if x.startswith("Suggested learning rate:")).split()[3])
    # 96 training images, 10% held out for validation: 86 left, so at most 64.
    assert found == 64 and math.log2(found).is_integer()
    run = tmp_path / "version_0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["batch_size"] == found
    assert config["model"]["lr"] == pytest.approx(lr, rel=1e-2)
    assert config["tune"]["lr_find"] is False and config["tune"]["batch_size_find"] is False
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["datamodule_hyper_parameters"]["batch_size"] == found
    assert checkpoint["hyper_parameters"]["lr"] == config["model"]["lr"]
    # The training itself used the found size: ceil(86 / 64) = 2 steps in the one epoch
    # (the configured 16 would have taken 6).
    assert checkpoint["global_step"] == 2


def test_range_test_curve_is_flat_when_the_loss_cannot_change(image_folder, tmp_path):
    # One full batch, no augmentation, no dropout and learning rates near zero: every
    # step sees the same loss, so the smoothed curve must be flat from its first point
    # (Lightning's own bias correction halves the first value; see debias_...).
    cifar_mlp.main(tiny_run(image_folder, tmp_path, "--data.batch_size", "128",
                            "--data.augment", "[]", "--model.dropout", "0",
                            "--tune.lr_find", "true", "--tune.lr_find_steps", "15",
                            "--tune.min_lr", "1e-10", "--tune.max_lr", "1e-9"))
    rows = (tmp_path / "version_0" / "lr_find.csv").read_text().splitlines()[1:]
    losses = [float(row.split(",")[1]) for row in rows]
    assert len(losses) == 15
    assert losses == pytest.approx([losses[0]] * 15, rel=1e-4)
    assert 0.5 < losses[0] < 3.0  # a cross-entropy of 4 classes near initialization


def test_debiasing_restores_a_constant_loss_from_lightnings_smoothing():
    beta, loss = 0.98, 2.0
    average, recorded = 0.0, []
    for step in range(1, 30):  # Lightning's arithmetic, global_step already = step
        average = beta * average + (1 - beta) * loss
        recorded.append(average / (1 - beta ** (step + 1)))
    assert recorded[0] == pytest.approx(loss / (1 + beta))
    assert debias_lr_finder_losses(recorded, beta) == pytest.approx([loss] * 29)


def test_suggestion_is_the_steepest_fall_per_decade_not_noise_at_tiny_rates():
    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    losses = [2.0 - 0.5 * math.tanh(math.log10(lr) + 3) for lr in lrs]  # steepest at 1e-3
    losses[12] -= 1e-3  # a tiny dip in the flat start: huge slope per unit of (tiny) LR
    assert steepest_descent(lrs, losses) == pytest.approx(1e-3, rel=0.1)
    assert steepest_descent(lrs[:12], losses[:12]) is None  # too few points


def test_bad_tuning_setting_is_one_line_exit_2(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cifar_mlp.main(tiny_run(image_folder, tmp_path, "--tune.lr_find", "true",
                                "--tune.batch_size_mode", "bisect"))
    assert exit_.value.code == 2
    assert "unknown batch-size search mode 'bisect'" in capsys.readouterr().err
