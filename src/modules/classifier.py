"""ImageClassifier: the LightningModule that trains any network from the registry.

It is built from plain values only (names, widths, numbers), so `save_hyperparameters()`
records everything needed and `ImageClassifier.load_from_checkpoint(path)` rebuilds the
same network. Inputs arrive already normalized float tensors [B, C, H, W]; the
datamodule does augmentation and normalization on the device (`on_after_batch_transfer`).
"""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.callbacks.freeze_backbone import FreezeBackbone
from src.errors import check_range
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
        arch: network architecture: "resnet18" (CIFAR ResNet18), "mlp", or
            "timm" for the timm model named by timm_model.
        num_classes: number of classes (linked from the datamodule by the CLI).
        in_channels: image channels (linked from the datamodule by the CLI).
        image_size: image height = width in pixels (linked from the datamodule by the CLI).
        norm: normalization layer: batch, layer, group, instance (ResNet only) or none.
        norm_groups: number of groups when norm="group"; must divide every layer width.
        norm_position: "before" (linear/conv -> norm -> act) or "after" (-> act -> norm) the
            activation; in a ResNet block "after" also moves the second norm after the
            residual addition and its activation. Never applied to the classifier output.
        act: activation: relu, relu6, leaky_relu, prelu, elu, selu, silu (= swish), gelu,
            gelu_tanh, tanh, sigmoid, or a gain-preserving a*phi(x)+b variant: gpn_tanh,
            gpn_relu, gpn_leaky_relu, gpn_elu, gpn_selu, gpn_gelu.
        act_slope: leaky_relu negative slope (null: 0.01) or prelu initial slope (null: 0.25).
        act_alpha: elu alpha (null: 1.0).
        init: weight init of every Linear/Conv layer: default (the framework's), normal,
            xavier_normal, xavier_uniform, kaiming_normal, kaiming_uniform (fan_in, gain of
            the activation) or orthogonal. Except for default, biases start at 0 and norm
            layers at weight 1, bias 0. With pretrained weights it applies to the head only.
        init_std: standard deviation for init=normal (null: 0.01).
        init_gain: gain for xavier_* (null: 1) and orthogonal (null: the activation's gain).
        dropout: dropout probability in [0, 1): MLP hidden layers, or before the ResNet
            (and timm) head.
        drop_block_prob: DropBlock drop probability in ResNet stages 3 and 4 (0: off).
        drop_block_size: DropBlock block side in pixels (clipped to the feature map).
        hidden_widths: MLP hidden layer widths.
        resnet_widths: ResNet18 stage widths.
        timm_model: timm model name for arch="timm", e.g. resnet18, convnext_nano.
        pretrained: start from timm's pretrained weights (local cache or download); a
            one-line error when they cannot be reached. To rebuild a checkpoint without
            them, load it with `load_from_checkpoint(path, pretrained=False)`.
        pretrained_path: local timm-format weights file to start from (implies pretrained).
        freeze_backbone_epochs: train only the classifier head for this many epochs, then
            the whole network (0: never frozen); frozen batch norms keep their statistics.
            With DDP use --trainer.strategy ddp_find_unused_parameters_true.
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
        norm_position: str = "before",
        act: str = "relu",
        act_slope: float | None = None,
        act_alpha: float | None = None,
        init: str = "default",
        init_std: float | None = None,
        init_gain: float | None = None,
        dropout: float = 0.0,
        drop_block_prob: float = 0.0,
        drop_block_size: int = 3,
        hidden_widths: tuple[int, ...] = (512, 256),
        resnet_widths: tuple[int, ...] = (64, 128, 256, 512),
        timm_model: str = "resnet18",
        pretrained: bool = False,
        pretrained_path: str | None = None,
        freeze_backbone_epochs: int = 0,
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
        check_range("freeze_backbone_epochs", freeze_backbone_epochs, 0)
        self.net = build_network(
            arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
            norm=norm, norm_groups=norm_groups, norm_position=norm_position, act=act,
            act_slope=act_slope, act_alpha=act_alpha, init=init, init_std=init_std,
            init_gain=init_gain, dropout=dropout, drop_block_prob=drop_block_prob,
            drop_block_size=drop_block_size, hidden_widths=hidden_widths,
            resnet_widths=resnet_widths, timm_model=timm_model, pretrained=pretrained,
            pretrained_path=pretrained_path,
        )
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # Loss means as metrics: synced across DDP ranks once per epoch, weighted by
        # batch size, so uneven last batches and uneven shards are averaged exactly.
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def configure_callbacks(self) -> list[L.Callback]:
        if self.hparams.freeze_backbone_epochs > 0:
            return [FreezeBackbone(self.hparams.freeze_backbone_epochs)]
        return []

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
