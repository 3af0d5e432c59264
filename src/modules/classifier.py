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
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.callbacks.freeze_backbone import FreezeBackbone
from src.core.errors import ConfigError, check_range
from src.evaluation.predictions import mirror_averaged_probs
from src.modules.losses import (
    build_loss,
    hard_labels,
    inverse_frequency_weights,
    wants_auto_class_weights,
)
from src.modules.networks import build_network
from src.modules.optimizers import OptimizerSettings, make_optimizer, validate_optimizer
from src.modules.schedulers import (
    RunLength,
    ScheduleSettings,
    lightning_scheduler_configs,
    make_scheduler,
    validate_scheduler,
)
from src.runs.checkpoints import CheckpointError, check_checkpoint_fits, read_checkpoint


class ImageClassifier(L.LightningModule):
    """Image classifier with a training loss, accuracy metrics, optimizer and schedule.

    Validation and test always report the plain (unweighted, unsmoothed) cross-entropy
    as val/loss and test/loss, so runs with different training losses stay comparable;
    train/loss is the training objective chosen here.

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
        loss: training loss: cross_entropy, bce (two classes only; BCE on the margin
            logit_1 - logit_0), mse or l1 (on softmax probabilities vs one-hot targets).
            See src/modules/losses.py.
        label_smoothing: label smoothing in [0, 1): targets become (1 - eps) t + eps / K.
        class_weights: per-class loss weights (cross_entropy, bce): a list of
            num_classes positive numbers, "auto" (N / (K * n_c) from the training
            split's class counts, computed when fitting starts and saved in checkpoints)
            or null (unweighted). For bce, [w0, w1] acts as pos_weight = w1 / w0.
        optimizer: sgd, adagrad, rmsprop, adam, adamw, lamb (timm) or lbfgs (full-batch
            training on a small subset: weight_decay 0, lr ~1, batch_size >= the subset).
        lr: (peak) learning rate.
        weight_decay: L2 penalty (SGD, Adagrad, RMSprop, Adam) or decoupled weight decay
            (AdamW, LAMB).
        decay_norm_and_bias: apply weight decay to biases and normalization weights too;
            false puts every 1-D parameter in a group without weight decay.
        momentum: SGD momentum.
        nesterov: use Nesterov momentum with SGD.
        betas: Adam/AdamW/LAMB moment coefficients.
        rmsprop_alpha: RMSprop smoothing constant of the squared-gradient average.
        rmsprop_momentum: RMSprop momentum.
        lbfgs_max_iter: L-BFGS iterations (loss evaluations on the batch) per step.
        lbfgs_history_size: L-BFGS number of past updates kept.
        lbfgs_line_search: L-BFGS line search: strong_wolfe or none (fixed step lr).
        scheduler: learning-rate schedule: constant, step, multistep, exponential,
            inverse_time, linear_then_constant, linear, cosine, cosine_restarts, cyclic,
            onecycle or reduce_on_plateau.
        warmup_epochs: linear warm-up over this many epochs before the schedule (0: none).
        warmup_steps: or over this many optimizer steps (set one of the two).
        warmup_start_factor: the warm-up starts at this fraction of the schedule's first LR.
        onecycle_pct_start: fraction of the run spent increasing the LR (onecycle).
        step_size_epochs: epochs between LR drops (step).
        step_gamma: factor of each LR drop (step, multistep).
        milestone_epochs: epochs at which the LR drops by step_gamma (multistep).
        exponential_gamma: LR factor per epoch (exponential).
        inverse_time_decay: lr / (1 + inverse_time_decay * step), step = optimizer steps
            (inverse_time).
        linear_end_factor: final LR as a fraction of lr (linear, linear_then_constant).
        decay_epochs: epochs of linear decay before the LR stays constant
            (linear_then_constant).
        min_lr: final / lowest learning rate (cosine, cosine_restarts, reduce_on_plateau).
        restart_epochs: epochs until the first restart, T_0 (cosine_restarts).
        restart_mult: factor by which each period grows, T_mult (cosine_restarts).
        cyclic_mode: triangular, triangular2 or exp_range (cyclic).
        cyclic_base_lr: lowest LR of each cycle; lr is the highest (cyclic).
        cyclic_step_epochs: epochs from the lowest to the highest LR, half a cycle (cyclic).
        cyclic_gamma: exp_range amplitude factor per optimizer step (cyclic).
        plateau_monitor: val/loss (mode min) or val/acc (mode max) (reduce_on_plateau).
        plateau_factor: LR factor of each reduction (reduce_on_plateau).
        plateau_patience: validations without improvement before a reduction
            (reduce_on_plateau).
        channels_last: on CUDA devices, keep the network's weights and its input batches
            in channels_last memory format (faster convolutions on tensor cores, notably
            with bf16). Ignored, with a warning, on other devices: on the CPU (torch
            2.14, oneDNN) channels_last convolution backward gave wrong weight gradients
            now and then, and hung.
        compile: compile the network with torch.compile (`nn.Module.compile`, so the
            checkpoint keys stay the same); the first steps take longer while it compiles.
        flip_tta: also test with horizontal-flip test-time augmentation (the mean of the
            softmax of each image and of its mirror image) and log it separately as
            test/acc_flip_tta; test/acc and test/loss stay those of the plain images.
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
        loss: str = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights: list[float] | str | None = None,
        optimizer: str = "sgd",
        lr: float = 0.1,
        weight_decay: float = 5e-4,
        decay_norm_and_bias: bool = True,
        momentum: float = 0.9,
        nesterov: bool = True,
        betas: tuple[float, float] = (0.9, 0.999),
        rmsprop_alpha: float = 0.99,
        rmsprop_momentum: float = 0.0,
        lbfgs_max_iter: int = 20,
        lbfgs_history_size: int = 100,
        lbfgs_line_search: str = "strong_wolfe",
        scheduler: str = "onecycle",
        warmup_epochs: int = 0,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.01,
        onecycle_pct_start: float = 0.25,
        step_size_epochs: int = 30,
        step_gamma: float = 0.1,
        milestone_epochs: tuple[int, ...] = (30, 60, 80),
        exponential_gamma: float = 0.98,
        inverse_time_decay: float = 1e-3,
        linear_end_factor: float = 0.01,
        decay_epochs: int = 10,
        min_lr: float = 0.0,
        restart_epochs: int = 10,
        restart_mult: int = 1,
        cyclic_mode: str = "triangular",
        cyclic_base_lr: float = 1e-4,
        cyclic_step_epochs: float = 2.0,
        cyclic_gamma: float = 0.9995,
        plateau_monitor: str = "val/loss",
        plateau_factor: float = 0.1,
        plateau_patience: int = 3,
        channels_last: bool = False,
        compile: bool = False,
        flip_tta: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        # Check every name and range now, before the trainer creates any file.
        self.criterion = build_loss(loss, num_classes, label_smoothing, class_weights)
        validate_optimizer(optimizer, self._optimizer_settings())
        validate_scheduler(scheduler, self._schedule_settings(), lr)
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
        self.uses_channels_last = False  # set once the network is on a CUDA device
        if compile:
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

    def configure_callbacks(self) -> list[L.Callback]:
        if self.hparams.freeze_backbone_epochs > 0:
            return [FreezeBackbone(self.hparams.freeze_backbone_epochs)]
        return []

    def _optimizer_settings(self) -> OptimizerSettings:
        hp = self.hparams
        return OptimizerSettings(
            lr=hp.lr, weight_decay=hp.weight_decay, decay_norm_and_bias=hp.decay_norm_and_bias,
            momentum=hp.momentum, nesterov=hp.nesterov, betas=tuple(hp.betas),
            rmsprop_alpha=hp.rmsprop_alpha, rmsprop_momentum=hp.rmsprop_momentum,
            lbfgs_max_iter=hp.lbfgs_max_iter, lbfgs_history_size=hp.lbfgs_history_size,
            lbfgs_line_search=hp.lbfgs_line_search,
        )

    def _schedule_settings(self) -> ScheduleSettings:
        hp = self.hparams
        return ScheduleSettings(
            warmup_epochs=hp.warmup_epochs, warmup_steps=hp.warmup_steps,
            warmup_start_factor=hp.warmup_start_factor,
            onecycle_pct_start=hp.onecycle_pct_start, step_size_epochs=hp.step_size_epochs,
            step_gamma=hp.step_gamma, milestone_epochs=tuple(hp.milestone_epochs),
            exponential_gamma=hp.exponential_gamma, inverse_time_decay=hp.inverse_time_decay,
            linear_end_factor=hp.linear_end_factor, decay_epochs=hp.decay_epochs,
            min_lr=hp.min_lr, restart_epochs=hp.restart_epochs, restart_mult=hp.restart_mult,
            cyclic_mode=hp.cyclic_mode, cyclic_base_lr=hp.cyclic_base_lr,
            cyclic_step_epochs=hp.cyclic_step_epochs, cyclic_gamma=hp.cyclic_gamma,
            plateau_monitor=hp.plateau_monitor, plateau_factor=hp.plateau_factor,
            plateau_patience=hp.plateau_patience,
        )

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
        images = batch[0] if isinstance(batch, list | tuple) else batch
        return self(images).softmax(dim=-1)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = make_optimizer(hp.optimizer, self, self._optimizer_settings())
        schedules = make_scheduler(hp.scheduler, optimizer, self._schedule_settings(),
                                   RunLength.from_trainer(self.trainer))
        if not schedules:
            return optimizer
        return [optimizer], lightning_scheduler_configs(schedules)


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
    except CheckpointError as error:
        raise CheckpointError(str(error).replace("the checkpoint", str(path), 1)) from None
