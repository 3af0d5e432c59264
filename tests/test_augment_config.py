"""Choosing augmentations from configs and flags; training batches only; soft-target loss."""

import re
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml

from experiments import cifar_mlp
from src.core.errors import ConfigError
from src.datamodules.augment import AUGMENTATIONS, build_augmentations, parameter_defaults
from src.datamodules.base import ImageDataModule
from src.datamodules.cifar10 import CIFAR10DataModule
from src.modules import ImageClassifier
from tests.checks import assert_tested_checkpoint, best_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def test_items_are_names_or_mappings_with_parameters():
    pipeline = build_augmentations(["flip", {"name": "crop", "padding": 2},
                                    {"name": "rotate", "degrees": [-5, 10]}], num_classes=10)
    flip, crop, rotate = pipeline.augmentations
    assert flip.p == 0.5 and crop.padding == 2 and rotate.degrees == (-5.0, 10.0)


def test_default_is_pad_4_crop_then_flip(image_folder):
    augmentations = CIFAR10DataModule(data_dir=str(image_folder)).augmentations.augmentations
    assert [type(a).__name__ for a in augmentations] == ["RandomCropWithPadding",
                                                        "RandomHorizontalFlip"]
    assert augmentations[0].padding == 4 and augmentations[1].p == 0.5


def test_unknown_name_fails_with_one_line_listing_every_name(image_folder):
    with pytest.raises(ConfigError) as error:
        CIFAR10DataModule(data_dir=str(image_folder), augment=["crop", "cutmixx"])
    message = str(error.value)
    assert "\n" not in message and "'cutmixx'" in message
    assert all(name in message for name in AUGMENTATIONS)


@pytest.mark.parametrize("spec,expected", [
    ({"name": "crop", "paddng": 2}, "choose one of: padding"),
    ({"name": "flip", "p": 1.5}, "p=1.5 is out of range"),
    ({"name": "color_jitter", "hue": 0.7}, "hue=0.7 is out of range"),
    ({"name": "resized_crop", "scale": [0.9, 0.2]}, "ordered"),
    ({"name": "blur", "kernel_size": 4}, "must be odd"),
    ({"name": "autoaugment", "policy": "mnist"}, "choose one of: cifar10, imagenet, svhn"),
    ({"name": "randaugment", "magnitude": 40}, "magnitude=40 is out of range"),
    ({"name": "mixup", "alpha": "big"}, "augmentation 'mixup'"),
    ({"padding": 4}, "must be a name or a mapping with a 'name'"),
])
def test_bad_parameters_fail_with_one_line(spec, expected):
    with pytest.raises(ConfigError) as error:
        build_augmentations([spec], num_classes=10)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_datamodule_docstring_lists_every_augmentation_and_parameter():
    # The --help text of data.augment is the only list users see from the command line.
    doc = " ".join(ImageDataModule.__doc__.split())
    for name in AUGMENTATIONS:
        listed = re.search(rf"\b{name}\(([^)]*)\)", doc)
        assert listed, f"{name} missing from the ImageDataModule docstring"
        for parameter in parameter_defaults(name):
            assert parameter in listed.group(1), f"{name}: {parameter} not documented"


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_recipe_augment_lists_build(config):
    augment = yaml.safe_load(config.read_text())["data"]["augment"]
    assert len(build_augmentations(augment, num_classes=10)) == len(augment)


class BatchRecorder(L.LightningModule):
    """Keeps the first batch each stage receives, after on_after_batch_transfer."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3 * 32 * 32, 4)
        self.seen = {}

    def _record(self, stage, batch):
        self.seen.setdefault(stage, batch)
        images, targets = batch
        return F.cross_entropy(self.layer(images.flatten(1)), targets)

    def training_step(self, batch, batch_idx):
        return self._record("train", batch)

    def validation_step(self, batch, batch_idx):
        self._record("val", batch)

    def test_step(self, batch, batch_idx):
        self._record("test", batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_only_training_batches_are_augmented(image_folder, tmp_path):
    datamodule = CIFAR10DataModule(data_dir=str(image_folder), batch_size=8, eval_batch_size=8,
                                   augment=["crop", "color_jitter", "cutout", "mixup"],
                                   cache_dir=str(tmp_path / "cache"))
    model = BatchRecorder()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0,
                        accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    for stage, image_set in (("val", datamodule.val_set), ("test", datamodule.test_set)):
        images, labels = model.seen[stage]
        assert torch.equal(images, datamodule.normalize(image_set.images[:8]))
        assert torch.equal(labels, image_set.labels[:8])
    images, targets = model.seen["train"]
    assert images.dtype == torch.float32 and targets.shape == (8, 4)  # mixed, soft


def test_loss_accepts_class_probabilities_and_keeps_label_smoothing():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    for smoothing in (0.0, 0.1):
        model = ImageClassifier(arch="mlp", num_classes=4, image_size=8, hidden_widths=(8,),
                                label_smoothing=smoothing)
        one_hot = F.one_hot(labels, 4).float()
        assert torch.allclose(model.loss(logits, one_hot), model.loss(logits, labels))
        smoothed = one_hot * (1 - smoothing) + smoothing / 4
        expected = -(smoothed * logits.log_softmax(dim=1)).sum(dim=1).mean()
        assert torch.allclose(model.loss(logits, labels), expected)
    soft = torch.tensor([[0.7, 0.3, 0.0, 0.0]]).expand(6, 4)
    expected = -(soft * logits.log_softmax(dim=1)).sum(dim=1).mean()
    model = ImageClassifier(arch="mlp", num_classes=4, image_size=8, hidden_widths=(8,))
    assert torch.allclose(model.loss(logits, soft), expected)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_training_accuracy_with_soft_targets_uses_their_largest_class():
    model = ImageClassifier(arch="mlp", num_classes=4, image_size=8, hidden_widths=(8,))
    images = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    soft = 0.4 * F.one_hot(predicted, 4).float() + 0.15  # largest: the predicted class
    soft[:3] = 0.4 * F.one_hot((predicted[:3] + 1) % 4, 4).float() + 0.15  # wrong
    model.training_step((images, soft), 0)
    assert model.train_acc.compute() == pytest.approx(0.5)


def test_cli_trains_with_every_augmentation(image_folder, tmp_path):
    augment = ("[crop, {name: resized_crop, scale: [0.3, 1.0]}, flip, rotate, affine, "
               "color_jitter, {name: grayscale, p: 0.5}, rgb_shift, noise, blur, erasing, "
               "{name: cutout, size: 8}, autoaugment, randaugment, trivialaugment, "
               "{name: mixup, alpha: 0.4}, cutmix, {name: mosaic, p: 0.5}]")
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "32",
        "--data.augment", augment, "--trainer.max_epochs", "1",
        "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[16]",
    ])
    run = tmp_path / "runs" / "version_0"
    # Augmentation acts on training batches only: the test figures are those of the
    # best checkpoint on the plain test images.
    assert_tested_checkpoint(results, best_checkpoint(run), image_folder)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert len(saved["data"]["augment"]) == 18
    assert {"name": "mixup", "alpha": 0.4} in saved["data"]["augment"]


def test_cli_flag_list_of_names_still_works(image_folder, tmp_path):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.augment", "[flip]",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
        "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[16]",
    ])
    assert_tested_checkpoint(results, best_checkpoint(tmp_path / "runs" / "version_0"),
                             image_folder)


def test_cli_unknown_augmentation_exits_with_one_line_before_writing(image_folder, tmp_path,
                                                                      capsys):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        cifar_mlp.main(["--data.data_dir", str(image_folder), "--data.augment", "[crop, mixupp]",
                        "--trainer.default_root_dir", str(runs)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: unknown augmentation 'mixupp'") and "\n" not in error
    assert not runs.exists()


def test_normalize_gives_the_same_result_for_uint8_and_float_batches(image_folder):
    datamodule = CIFAR10DataModule(data_dir=str(image_folder))
    datamodule.mean = torch.tensor([0.4, 0.5, 0.6])
    datamodule.std = torch.tensor([0.2, 0.25, 0.3])
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    from_uint8 = datamodule.normalize(images)
    from_float = datamodule.normalize(images.float() / 255)
    assert torch.allclose(from_uint8, from_float, atol=1e-5)
    expected = (images[:, 1].float() / 255 - 0.5) / 0.25
    assert torch.allclose(from_float[:, 1], expected, atol=1e-5)
