"""Sanity checks: initial loss, overfitting one sample or batch, activation statistics."""

import math
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from experiments import cifar_mlp
from src.callbacks.activation_stats import ActivationStats
from src.callbacks.initial_loss import InitialLossCheck
from src.callbacks.overfit import OverfitCheck
from src.datamodules import CIFAR10DataModule
from src.modules import ImageClassifier

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit_briefly(image_folder, tmp_path, model, callbacks, **trainer_kwargs):
    datamodule = CIFAR10DataModule(data_dir=str(image_folder), batch_size=16, augment=())
    settings = {"max_steps": 1, "limit_val_batches": 0, **trainer_kwargs}
    trainer = L.Trainer(accelerator="cpu", logger=CSVLogger(tmp_path, name=""),
                        callbacks=callbacks, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, **settings)
    trainer.fit(model, datamodule=datamodule)
    return trainer


def tiny_mlp(**kwargs) -> ImageClassifier:
    settings = {"arch": "mlp", "num_classes": 4, "hidden_widths": (32,), **kwargs}
    return ImageClassifier(**settings)


def test_initial_loss_check_warns_for_huge_initial_weights(image_folder, tmp_path):
    torch.manual_seed(0)
    model = tiny_mlp(norm="none")
    with torch.no_grad():
        for parameter in model.net.parameters():
            parameter.mul_(30.0)  # confidently wrong outputs before any training
    check = InitialLossCheck()
    with pytest.warns(UserWarning, match="Initial loss check.*confidently wrong"):
        fit_briefly(image_folder, tmp_path, model, [check])
    assert check.expected_loss == pytest.approx(math.log(4), rel=1e-5)
    assert check.initial_loss > 1.25 * math.log(4)


def test_initial_loss_check_is_quiet_for_a_normal_initialization(image_folder, tmp_path):
    torch.manual_seed(0)
    check = InitialLossCheck()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_briefly(image_folder, tmp_path, tiny_mlp(), [check])
    assert not [w for w in caught if "Initial loss check" in str(w.message)]
    assert abs(check.initial_loss - math.log(4)) <= 0.25 * math.log(4)


@pytest.mark.parametrize("mode, lr, reached", [
    ("one_batch", "0.01", True),
    ("one_sample", "0.01", True),
    ("one_batch", "1e-9", False),  # a learning rate this small cannot fit anything
])
def test_overfit_mode_reports_whether_training_accuracy_reaches_100(
        mode, lr, reached, image_folder, tmp_path, capsys):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.default_root_dir", str(tmp_path), "--model.hidden_widths", "[32]",
        "--model.lr", lr, "--overfit.mode", mode, "--overfit.steps", "60", *QUIET])
    assert results["overfit/reached_100"] == float(reached)
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("Overfit")]
    assert len(lines) == 1
    size = "one sample (one training image)" if mode == "one_sample" else \
        "one batch (16 training images)"
    assert lines[0].startswith(f"Overfit {size}, no augmentation: training accuracy")
    assert ("reached 100%" in lines[0]) == reached and ("did NOT" in lines[0]) != reached
    if reached:
        assert results["overfit/acc"] == 1.0 and results["overfit/steps"] < 60
    else:
        assert results["overfit/steps"] == 60
    # A sanity check, not a training run: no checkpoints, no test.
    assert not list(tmp_path.rglob("*.ckpt")) and "test/acc" not in results


def test_trainer_overfit_batches_trains_on_the_same_batch_every_epoch(image_folder, tmp_path):
    class RecordLabels(L.Callback):
        def __init__(self):
            self.labels = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.labels.append(batch[1].clone())

    def labels_per_epoch(callbacks):
        recorder = RecordLabels()
        fit_briefly(image_folder, tmp_path, tiny_mlp(), [*callbacks, recorder],
                    max_steps=-1, max_epochs=3, overfit_batches=1)
        return recorder.labels

    with pytest.warns(UserWarning, match="overfit_batches: every epoch now trains on the same"):
        repaired = labels_per_epoch([OverfitCheck()])
    assert len(repaired) == 3 and all(torch.equal(labels, repaired[0]) for labels in repaired)
    assert len(set(repaired[0].tolist())) > 1  # a random batch, not one class
    plain = labels_per_epoch([])  # Lightning alone cannot fix our loader's order
    assert not all(torch.equal(labels, plain[0]) for labels in plain)


def test_activation_stats_detect_dead_relus_and_saturated_tanh(image_folder, tmp_path):
    def stats_of(model, run):
        stats = ActivationStats(every_n_steps=1)
        fit_briefly(image_folder, tmp_path / run, model, [stats], max_steps=2)
        return stats

    torch.manual_seed(0)
    healthy = stats_of(tiny_mlp(norm="none", hidden_widths=(32, 32)), "healthy")
    dead_model = tiny_mlp(norm="none", hidden_widths=(32, 32))
    with torch.no_grad():
        dead_model.net.features[1].bias.fill_(-100.0)  # first Linear: every ReLU input < 0
    dead = stats_of(dead_model, "dead")
    saturated_model = tiny_mlp(norm="none", act="tanh", hidden_widths=(32,))
    with torch.no_grad():
        saturated_model.net.features[1].weight.mul_(50.0)
    saturated = stats_of(saturated_model, "saturated")

    def first_layer(stats, step=0):
        return next(row for row in stats.records if row["step"] == step
                    and row["layer_index"] == 0)

    assert [row["step"] for row in dead.records] == [0, 0, 1, 1]  # 2 ReLUs x 2 steps
    assert first_layer(dead)["layer"] == "features.3" and first_layer(dead)["kind"] == "ReLU"
    assert first_layer(dead)["inactive"] == 1.0 and first_layer(dead)["act_std"] == 0.0
    assert first_layer(healthy)["inactive"] < 0.5 and first_layer(healthy)["act_std"] > 0
    assert first_layer(saturated)["kind"] == "Tanh" and first_layer(saturated)["inactive"] > 0.8
    assert first_layer(tiny_mlp_stats := healthy)["grad_std"] > 0  # gradients were caught
    assert math.isfinite(first_layer(tiny_mlp_stats, step=1)["grad_mean"])
    for run in ("healthy", "dead", "saturated"):
        run_dir = tmp_path / run / "version_0"
        assert (run_dir / "activation_stats.png").stat().st_size > 0
        header = (run_dir / "activation_stats.csv").read_text().splitlines()[0]
        assert header.startswith("step,layer_index,layer,kind,act_mean,act_std,inactive")
    logged = (tmp_path / "dead" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "activations/00_features.3/dead" in logged and "gradients/00_features.3/std" in logged
