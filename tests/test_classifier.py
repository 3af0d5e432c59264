"""ImageClassifier: built from plain values, so checkpoints round-trip exactly."""

import lightning as L
import pytest
import torch

from src.core.errors import ConfigError
from src.datamodules import CIFAR10DataModule
from src.modules import ImageClassifier


def tiny_trainer(tmp_path, **overrides) -> L.Trainer:
    settings = dict(default_root_dir=tmp_path, max_epochs=1, accelerator="cpu", logger=False,
                    enable_progress_bar=False, enable_model_summary=False)
    settings.update(overrides)
    return L.Trainer(**settings)


@pytest.mark.parametrize("arch, extra", [
    ("mlp", {"hidden_widths": (16,), "norm": "layer"}),
    ("resnet18", {"resnet_widths": (4, 8, 8, 8), "norm": "batch"}),
])
def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, image_folder, arch, extra):
    L.seed_everything(0)
    dm = CIFAR10DataModule(data_dir=str(image_folder), batch_size=16)
    model = ImageClassifier(arch=arch, num_classes=4, optimizer="adam", lr=1e-3,
                            scheduler="cosine", **extra)
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, datamodule=dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    restored = ImageClassifier.load_from_checkpoint(path)
    assert restored.hparams == model.hparams
    images = torch.randn(5, 3, 32, 32)
    model.eval()
    restored.eval()
    with torch.no_grad():
        assert torch.equal(model(images), restored(images))


def test_schedule_length_comes_from_the_trainer(tmp_path, image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), batch_size=16, val_fraction=0.25)
    model = ImageClassifier(arch="mlp", num_classes=4, hidden_widths=(8,), scheduler="onecycle")
    trainer = tiny_trainer(tmp_path, max_epochs=3)
    trainer.fit(model, datamodule=dm)
    scheduler = trainer.lr_scheduler_configs[0]
    # 72 training images / 16 per batch -> 5 batches per epoch, 3 epochs.
    assert scheduler.interval == "step"
    assert scheduler.scheduler.total_steps == 15 == trainer.global_step


def test_step_schedule_steps_per_epoch(tmp_path, image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), batch_size=32)
    model = ImageClassifier(arch="mlp", num_classes=4, hidden_widths=(8,), lr=0.1,
                            scheduler="step", step_size_epochs=1, step_gamma=0.5)
    trainer = tiny_trainer(tmp_path, max_epochs=2)
    trainer.fit(model, datamodule=dm)
    assert trainer.lr_scheduler_configs[0].interval == "epoch"
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_training_reduces_the_loss_on_a_learnable_task(tmp_path, image_folder):
    L.seed_everything(0)
    dm = CIFAR10DataModule(data_dir=str(image_folder), batch_size=16, augment=())
    model = ImageClassifier(arch="mlp", num_classes=4, hidden_widths=(32,), optimizer="adam",
                            lr=3e-3, scheduler="constant")
    trainer = tiny_trainer(tmp_path, max_epochs=8)
    trainer.fit(model, datamodule=dm)
    result = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert result["test/acc"] >= 0.9  # 4 well separated classes


@pytest.mark.parametrize("arguments, message", [
    ({"optimizer": "sgdd"}, "unknown optimizer 'sgdd'; choose one of: adagrad, adam, adamw"),
    ({"scheduler": "cosin"}, "unknown scheduler 'cosin'"),
    ({"lr": 0.0}, "lr=0.0 is out of range"),
    ({"label_smoothing": 1.0}, "label_smoothing=1.0 is out of range"),
    ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, "nesterov=True needs momentum"),
])
def test_bad_training_settings_fail_at_construction(arguments, message):
    with pytest.raises(ConfigError, match=message):
        ImageClassifier(arch="mlp", hidden_widths=(8,), **arguments)
