"""ImageClassifier: the LightningModule that trains any network from the registry.

It is built from plain values only (names, widths, numbers), so `save_hyperparameters()`
records everything needed and `ImageClassifier.load_from_checkpoint(path)` rebuilds the
same network. Inputs arrive already normalized float tensors [B, C, H, W]; the
datamodule does augmentation and normalization on the device (`on_after_batch_transfer`).
"""

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.errors import ConfigError, check_range
from src.modules.checkpoints import check_weights_fit, read_checkpoint
from src.modules.networks import build_network
from src.modules.optim import (
    OptimizerSettings,
    ScheduleSettings,
    make_optimizer,
    make_scheduler,
    validate_optimizer,
    validate_scheduler,
)


class ImageClassifier(L.LightningModule):
    """Image classifier with cross-entropy loss, accuracy metrics, optimizer and schedule.

    Args:
        arch: network architecture: "resnet18" or "mlp".
        num_classes: number of classes (linked from the datamodule by the CLI).
        in_channels: image channels (linked from the datamodule by the CLI).
        image_size: image height = width in pixels (linked from the datamodule by the CLI).
        norm: normalization layer: batch, layer, group, instance (ResNet only) or none.
        norm_groups: number of groups when norm="group"; must divide every layer width.
        act: activation function name, e.g. relu, gelu, silu, tanh.
        dropout: dropout probability in [0, 1): MLP hidden layers, or before the ResNet head.
        hidden_widths: MLP hidden layer widths.
        resnet_widths: ResNet18 stage widths.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        optimizer: sgd, adam or adamw.
        lr: (peak) learning rate.
        weight_decay: L2 penalty (SGD, Adam) or decoupled weight decay (AdamW).
        momentum: SGD momentum.
        nesterov: use Nesterov momentum with SGD.
        betas: Adam/AdamW moment coefficients.
        scheduler: learning-rate schedule: constant, onecycle, cosine or step.
        onecycle_pct_start: fraction of the run spent increasing the LR (onecycle).
        step_size_epochs: epochs between LR drops (step).
        step_gamma: factor of each LR drop (step).
        min_lr: final learning rate (cosine).
    """

    def __init__(
        self,
        arch: str = "resnet18",
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        norm: str = "batch",
        norm_groups: int = 32,
        act: str = "relu",
        dropout: float = 0.0,
        hidden_widths: tuple[int, ...] = (512, 256),
        resnet_widths: tuple[int, ...] = (64, 128, 256, 512),
        label_smoothing: float = 0.0,
        optimizer: str = "sgd",
        lr: float = 0.1,
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        nesterov: bool = True,
        betas: tuple[float, float] = (0.9, 0.999),
        scheduler: str = "onecycle",
        onecycle_pct_start: float = 0.25,
        step_size_epochs: int = 30,
        step_gamma: float = 0.1,
        min_lr: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        # Check every name and range now, before the trainer creates any file.
        check_range("label_smoothing", label_smoothing, 0.0, 1.0, high_inclusive=False)
        validate_optimizer(optimizer, self._optimizer_settings())
        validate_scheduler(scheduler)
        self.net = build_network(
            arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
            norm=norm, norm_groups=norm_groups, act=act, dropout=dropout,
            hidden_widths=hidden_widths, resnet_widths=resnet_widths,
        )
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # Loss means as metrics: synced across DDP ranks once per epoch, weighted by
        # batch size, so uneven last batches and uneven shards are averaged exactly.
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def _optimizer_settings(self) -> OptimizerSettings:
        hp = self.hparams
        return OptimizerSettings(lr=hp.lr, weight_decay=hp.weight_decay, momentum=hp.momentum,
                                 nesterov=hp.nesterov, betas=tuple(hp.betas))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [B, C, H, W] float -> logits [B, num_classes]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, targets = batch
        logits = self(images)
        loss = self.loss(logits, targets)
        self.train_acc(logits, targets)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, loss_metric: MeanMetric, acc_metric: MulticlassAccuracy,
                  stage: str) -> None:
        images, targets = batch
        # Evaluation always uses the plain cross-entropy so val/test losses of runs with
        # and without label smoothing are comparable.
        logits = self(images)
        loss_metric(F.cross_entropy(logits, targets), weight=targets.numel())
        acc_metric(logits, targets)
        self.log(f"{stage}/loss", loss_metric, on_step=False, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", acc_metric, on_step=False, on_epoch=True, prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_acc, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_loss, self.test_acc, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        return self(images).softmax(dim=-1)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Called before the weights are copied, by load_from_checkpoint and by
        # fit/test(ckpt_path=...): refuse another network in one line.
        check_weights_fit(self.state_dict(), checkpoint, self.hparams)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = make_optimizer(hp.optimizer, self.parameters(), self._optimizer_settings())
        schedule = make_scheduler(hp.scheduler, optimizer, ScheduleSettings(
            total_steps=int(self.trainer.estimated_stepping_batches),
            max_epochs=self.trainer.max_epochs,
            onecycle_pct_start=hp.onecycle_pct_start,
            step_size_epochs=hp.step_size_epochs,
            step_gamma=hp.step_gamma,
            min_lr=hp.min_lr,
        ))
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def load_classifier(path: str | Path, **overrides: Any) -> ImageClassifier:
    """Load an ImageClassifier from a checkpoint onto the CPU, with one-line errors.

    The file is read with `weights_only=True` (nothing in it is executed). A missing file,
    a file that is not a checkpoint, or a checkpoint of another network (`overrides` such
    as `num_classes=100` change what is expected) raises ConfigError naming the problem.
    """
    read_checkpoint(path)
    try:
        return ImageClassifier.load_from_checkpoint(path, map_location="cpu",
                                                    weights_only=True, **overrides)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
