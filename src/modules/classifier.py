"""ImageClassifier: the LightningModule that trains any network from the registry.

It is built from plain values only (names, widths, numbers), so `save_hyperparameters()`
records everything needed and `ImageClassifier.load_from_checkpoint(path)` rebuilds the
same network. Inputs arrive already normalized float tensors [B, C, H, W]; the
datamodule does augmentation and normalization on the device (`on_after_batch_transfer`).
"""

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.callbacks.freeze_backbone import FreezeBackbone
from src.core.errors import ConfigError
from src.core.settings import (
    args_section,
    check_settings,
    flat_signature,
    setting,
    settings_group,
    specs,
    split_settings,
)
from src.modules.losses import (
    LossSettings,
    build_loss,
    hard_labels,
    inverse_frequency_weights,
    wants_auto_class_weights,
)
from src.modules.networks import NetworkSettings, NetworkShape, build_network
from src.modules.optimizers import OptimizerSettings, make_optimizer, validate_optimizer
from src.modules.schedulers import (
    RunLength,
    ScheduleSettings,
    lightning_scheduler_configs,
    make_scheduler,
    validate_scheduler,
)
from src.modules.tta import mirror_averaged_probs
from src.runs.checkpoints import CheckpointError, check_checkpoint_fits, read_checkpoint


@settings_group
@dataclass(frozen=True)
class InputSettings:
    """What the data decide: linked from the datamodule by the CLI, recorded in checkpoints."""

    num_classes: int = setting(10, "number of classes (linked from the data)", low=2)
    in_channels: int = setting(3, "image channels (linked from the data)", low=1)
    image_size: int = setting(32, "image height = width in pixels (linked from the data)",
                              low=1)
    class_names: tuple[str, ...] | None = setting(
        None, "class names in label order; recorded from the data when fitting starts",
        none_means="not recorded yet")
    input_mean: tuple[float, ...] | None = setting(
        None, "per-channel shift of the input: the network sees (pixel / 255 - input_mean) / "
        "input_std; recorded from the data (--data.normalization) when fitting starts",
        none_means="not recorded yet")
    input_std: tuple[float, ...] | None = setting(
        None, "per-channel divisor of the input (see input_mean)", low=0.0,
        low_inclusive=False, none_means="not recorded yet")


@settings_group
@dataclass(frozen=True)
class RuntimeSettings:
    """How the network runs, and what the final test also reports."""

    channels_last: bool = setting(
        False, "on CUDA devices, keep the weights and input batches in channels_last memory "
        "format (faster convolutions on tensor cores); ignored with a warning elsewhere: on "
        "the CPU (torch 2.14, oneDNN) channels_last convolution backward gave wrong weight "
        "gradients now and then, and hung")
    compile: bool = setting(False, "compile the network with torch.compile (the checkpoint "
                            "keys stay the same); the first steps take longer")
    flip_tta: bool = setting(
        False, "also test with horizontal-flip test-time augmentation (the mean softmax of "
        "each image and its mirror image), logged as test/acc_flip_tta; test/acc stays that "
        "of the plain images")


T = TypeVar("T")

# Every setting of the module, in the order --help and the reference list them.
SETTING_GROUPS = (InputSettings, NetworkSettings, LossSettings, OptimizerSettings,
                  ScheduleSettings, RuntimeSettings)


class ImageClassifier(L.LightningModule):
    """Image classifier with a training loss, accuracy metrics, optimizer and schedule.

    Built from plain values only: one keyword per setting, each declared once in its
    group (`InputSettings`, `NetworkSettings`, `LossSettings`, `OptimizerSettings`,
    `ScheduleSettings`, `RuntimeSettings`), from which this signature, this docstring and
    the `--model.*` help come. Validation and test always report the plain cross-entropy
    as val/loss and test/loss, so runs with different training losses stay comparable;
    train/loss is the training objective chosen here.
    """

    def __init__(self, **settings: Any):
        super().__init__()
        groups = split_settings(SETTING_GROUPS, settings)
        # Every setting, defaults included: the checkpoint rebuilds this exact module. The
        # hyperparameters stay the one copy of the settings (the finders change lr there).
        self._record_hyperparameters({name: value for group in groups
                                      for name, value in asdict(group).items()})
        # Check every name and range now, before the trainer creates any file.
        check_settings(self.input_settings)
        check_settings(self.runtime_settings)
        num_classes = self.input_settings.num_classes
        self.criterion = build_loss(self.loss_settings, num_classes)
        validate_optimizer(self.optimizer_settings)
        validate_scheduler(self.schedule_settings, self.optimizer_settings.lr)
        self.net = build_network(self.network_settings, NetworkShape(
            num_classes, self.input_settings.in_channels, self.input_settings.image_size))
        self.uses_channels_last = False  # set once the network is on a CUDA device
        if self.runtime_settings.compile:
            self.net.compile()
        # validate_args=False: torchmetrics' input checks may count distinct labels
        # (torch.unique: a device sync every step); the labels come from our own data.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc_flip_tta = MulticlassAccuracy(num_classes, average="micro",
                                                    validate_args=False)
        # Loss means as metrics: synced across DDP ranks once per epoch, weighted by
        # batch size, so uneven last batches and uneven shards are averaged exactly.
        # nan_strategy="disable": the NaN check is a device sync every step (a NaN loss
        # then shows as a NaN mean, which is what it should show).
        self.val_loss = MeanMetric(nan_strategy="disable")
        self.test_loss = MeanMetric(nan_strategy="disable")

    def _record_hyperparameters(self, values: dict[str, Any]) -> None:
        """What `save_hyperparameters(values)` stores, without its look at the caller's
        local variables: the signature is generated, so `__init__` has no local variable
        per setting for Lightning to find (it would fail with a KeyError)."""
        self._set_hparams(values)
        self._hparams_initial = copy.deepcopy(self._hparams)

    def _settings(self, group: type[T]) -> T:
        return group(**{name: self.hparams[name] for name in specs(group)})

    @property
    def input_settings(self) -> InputSettings:
        return self._settings(InputSettings)

    @property
    def network_settings(self) -> NetworkSettings:
        return self._settings(NetworkSettings)

    @property
    def loss_settings(self) -> LossSettings:
        return self._settings(LossSettings)

    @property
    def optimizer_settings(self) -> OptimizerSettings:
        return self._settings(OptimizerSettings)

    @property
    def schedule_settings(self) -> ScheduleSettings:
        return self._settings(ScheduleSettings)

    @property
    def runtime_settings(self) -> RuntimeSettings:
        return self._settings(RuntimeSettings)

    def configure_callbacks(self) -> list[L.Callback]:
        if self.hparams.freeze_backbone_epochs > 0:
            return [FreezeBackbone(self.hparams.freeze_backbone_epochs)]
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uses_channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # no copy if it already is
        return self.net(x)  # [B, C, H, W] float -> logits [B, num_classes]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training objective; targets: class indices [B] or probabilities [B, K]."""
        return self.criterion(logits, targets)

    def use_memory_format(self, device: torch.device) -> None:
        """Switch the network to channels_last if asked and `device` is a CUDA device."""
        if not self.hparams.channels_last or self.uses_channels_last:
            return
        if device.type != "cuda":
            rank_zero_warn(f"channels_last is used on CUDA devices only; training on "
                           f"{device.type} keeps the default memory format")
            return
        self.net.to(memory_format=torch.channels_last)  # the same Parameter objects
        self.uses_channels_last = True

    def setup(self, stage: str) -> None:
        if stage == "fit":  # the datamodule is set up by now (Lightning calls it first)
            self.record_data(getattr(self.trainer, "datamodule", None))

    def record_data(self, datamodule: Any) -> None:
        """Record the class names and the input scaling of the data this module trains on,
        so that its checkpoints classify new images on their own (`classify`)."""
        if datamodule is None or getattr(datamodule, "mean", None) is None:
            return  # not an ImageDataModule, or not set up
        shift, divisor = datamodule.normalization_constants()
        names = tuple(getattr(datamodule, "classes", None) or ()) or None
        recorded = {"class_names": names, "input_mean": tuple(shift.tolist()),
                    "input_std": tuple(divisor.tolist())}
        self.hparams.update(recorded)

    def normalize_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [B, C, H, W] (0..255) -> the network's input, scaled as in training."""
        settings = self.input_settings
        if settings.input_mean is None or settings.input_std is None:
            raise ConfigError("this model has no recorded input scaling (input_mean, "
                              "input_std): it was never fitted on an ImageDataModule")
        shape = (1, -1, 1, 1)
        mean = torch.tensor(settings.input_mean, device=images.device).view(shape)
        std = torch.tensor(settings.input_std, device=images.device).view(shape)
        return (images.float() / 255 - mean) / std

    @torch.no_grad()
    def classify(self, images: torch.Tensor, flip_tta: bool = False) -> torch.Tensor:
        """Class probabilities [B, num_classes] of uint8 images [B, C, H, W], computed in
        eval mode on the model's device; `flip_tta`: the mean with their mirror images."""
        was_training = self.training
        self.eval()
        inputs = self.normalize_input(images.to(self.device))
        logits = self(inputs)
        if flip_tta:
            probs = mirror_averaged_probs(self, inputs, logits)
        else:
            probs = logits.float().softmax(dim=-1)
        self.train(was_training)
        return probs

    def on_test_start(self) -> None:
        self.use_memory_format(self.device)

    def on_fit_start(self) -> None:
        self.use_memory_format(self.device)  # on its device now, before the first step
        if wants_auto_class_weights(self.hparams.class_weights):
            datamodule = self.trainer.datamodule
            train_set = getattr(datamodule, "train_set", None)
            if train_set is None:
                raise ConfigError("class_weights='auto' needs a datamodule with a train_set "
                                  "(its labels give the class frequencies)")
            self.criterion.set_class_weights(inverse_frequency_weights(
                train_set.labels, self.hparams.num_classes, getattr(datamodule, "classes", None)))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Weights computed from the data ("auto") are not in the hyperparameters.
        if self.criterion.class_weights is not None:
            checkpoint["loss_class_weights"] = self.criterion.class_weights.cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before the weights are copied in: a checkpoint of another architecture or
        # number of classes fails with one line instead of a long size-mismatch error.
        check_checkpoint_fits(checkpoint, self)
        if "loss_class_weights" in checkpoint:
            self.criterion.set_class_weights(checkpoint["loss_class_weights"])

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, targets = batch
        logits = self(images)
        loss = self.loss(logits, targets)
        self.train_acc(logits, hard_labels(targets))
        # Not on the progress bar: it reads its values (.item(), a device sync) every
        # refresh; the logger reads train/loss every log_every_n_steps only.
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, loss_metric: MeanMetric, acc_metric: MulticlassAccuracy,
                  stage: str) -> torch.Tensor:
        images, targets = batch
        # Evaluation always uses the plain cross-entropy so val/test losses of runs with
        # and without label smoothing are comparable.
        logits = self(images)
        # Per-image losses: their mean over all batches weighs every image alike.
        loss_metric(F.cross_entropy(logits, targets, reduction="none"))
        acc_metric(logits, targets)
        self.log(f"{stage}/loss", loss_metric, on_step=False, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", acc_metric, on_step=False, on_epoch=True, prog_bar=True)
        return logits

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_acc, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        logits = self._evaluate(batch, self.test_loss, self.test_acc, "test")
        if self.hparams.flip_tta:
            images, targets = batch
            self.test_acc_flip_tta(mirror_averaged_probs(self, images, logits), targets)
            self.log("test/acc_flip_tta", self.test_acc_flip_tta, on_step=False,
                     on_epoch=True)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Class probabilities [B, K]: of raw uint8 images (scaled here as in training,
        `normalize_input`), or of float images already scaled."""
        images = batch[0] if isinstance(batch, list | tuple) else batch
        if images.dtype == torch.uint8:
            images = self.normalize_input(images)
        return self(images).float().softmax(dim=-1)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path, map_location: Any = "cpu",
                             strict: bool = True, weights_only: bool = True,
                             **overrides: Any) -> "ImageClassifier":
        """Rebuild the module from a checkpoint: its recorded settings (`overrides` change
        some, e.g. `pretrained=False`), then its weights, on the CPU.

        The file is read weights-only (`read_checkpoint`): a file whose unpickling would
        run code is refused in one line and none of it runs. A missing or damaged file,
        or a checkpoint of another network, raises CheckpointError naming the file.
        """
        if not weights_only:
            raise CheckpointError("checkpoints are only read weights-only here (no pickled "
                                  "code is run); load a trusted file with torch.load yourself")
        checkpoint = read_checkpoint(checkpoint_path, map_location=map_location)
        return cls.from_checkpoint(checkpoint, checkpoint_path, strict, **overrides)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], path: str | Path = "the checkpoint",
                        strict: bool = True, **overrides: Any) -> "ImageClassifier":
        """The module of a checkpoint already read with `read_checkpoint`."""
        model = cls(**{**checkpoint.get("hyper_parameters", {}), **overrides})
        check_checkpoint_fits(checkpoint, model, path)
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=strict)
        return model

    def configure_optimizers(self) -> Any:
        optimizer = make_optimizer(self, self.optimizer_settings)
        schedules = make_scheduler(optimizer, self.schedule_settings,
                                   RunLength.from_trainer(self.trainer))
        if not schedules:
            return optimizer
        return [optimizer], lightning_scheduler_configs(schedules)


# One declaration per setting: the signature and the Args of the docstring come from it
# (LightningCLI reads both for --model.* and --help).
ImageClassifier.__init__.__signature__ = flat_signature(SETTING_GROUPS)
ImageClassifier.__doc__ = f"{ImageClassifier.__doc__.rstrip()}\n\n    Args:\n" + "\n".join(
    f"    {line}" for line in args_section(SETTING_GROUPS).splitlines()) + "\n"
