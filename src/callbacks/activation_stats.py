"""ActivationStats: per-layer activation and gradient statistics, to see whether signals
vanish, saturate or stay "just right" through the depth of the network.

Every N training steps, forward hooks on the activation layers (nn.ReLU, nn.Tanh, ...)
record for each layer, in the order the forward pass runs them:
- the mean and std of its outputs,
- for ReLU/ReLU6 the fraction of dead units (features, or channels of a feature map,
  that are zero for every image of the batch: they pass no gradient),
- for tanh/sigmoid the fraction of saturated values (|tanh| > 0.99, sigmoid < 0.01 or
  > 0.99: their gradient is nearly zero),
- the mean and std of the gradient of the loss with respect to its outputs.
The numbers go to every logger (`activations/<layer>/std`, `gradients/<layer>/std`, ...);
when fitting ends, <log_dir>/activation_stats.csv and activation_stats.png (statistics by
depth, one line per sampled step, and histograms of the first sampled step) are written.
"""

import csv
import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from src.core.errors import check_range
from src.reporting.plots import plot_activation_stats

DEAD_KINDS = (nn.ReLU, nn.ReLU6)  # zero output and zero gradient for every x < 0
SATURATION = {nn.Tanh: (-0.99, 0.99), nn.Sigmoid: (0.01, 0.99)}  # outside = saturated
NOT_ACTIVATIONS = (nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d, nn.MultiheadAttention)
COLUMNS = ("step", "layer_index", "layer", "kind", "act_mean", "act_std", "inactive",
           "grad_mean", "grad_std")


def is_activation(module: nn.Module) -> bool:
    """Any element-wise activation layer of torch.nn (ReLU, GELU, Tanh, Sigmoid, ...)."""
    return (type(module).__module__ == "torch.nn.modules.activation"
            and not isinstance(module, NOT_ACTIVATIONS))


def inactive_fraction(module: nn.Module, values: torch.Tensor) -> float:
    """Dead-unit fraction (ReLU), saturated-value fraction (tanh, sigmoid), else NaN.

    values: the layer's output, [B, F] or [B, C, H, W].
    """
    if isinstance(module, DEAD_KINDS):
        other_dims = [d for d in range(values.dim()) if d != 1]
        return float((values.amax(dim=other_dims) <= 0).float().mean())
    for kind, (low, high) in SATURATION.items():
        if isinstance(module, kind):
            return float(((values < low) | (values > high)).float().mean())
    return math.nan


class ActivationStats(L.Callback):
    """Log per-layer activation/gradient statistics every N steps; plot them at the end.

    Args:
        every_n_steps: sample one training step in N (0 turns the statistics off).
        histogram_bins: bins of the activation histograms in the plot.
    """

    def __init__(self, every_n_steps: int = 0, histogram_bins: int = 60):
        check_range("activation_stats.every_n_steps", every_n_steps, 0)
        check_range("activation_stats.histogram_bins", histogram_bins, 2)
        self.every_n_steps = every_n_steps
        self.histogram_bins = histogram_bins
        self.records: list[dict[str, Any]] = []
        # step -> [(layer, counts [bins], low, high)], kept for the first sampled step
        self.histograms: dict[int, list[tuple[str, torch.Tensor, float, float]]] = {}
        self._hooks: list[Any] = []
        self._rows: list[dict[str, Any]] = []
        self._last_sampled_step = -1

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch,
                             batch_idx: int) -> None:
        step = trainer.global_step
        if (self.every_n_steps == 0 or step % self.every_n_steps != 0
                or step == self._last_sampled_step):  # accumulated batches share a step
            return
        self._last_sampled_step = step
        self._rows = []
        for name, module in pl_module.named_modules():
            if is_activation(module):
                layer = name.removeprefix("net.")
                self._hooks.append(module.register_forward_hook(
                    partial(self._on_forward, step, layer)))

    def _on_forward(self, step: int, layer: str, module: nn.Module, inputs,
                    output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            return
        values = output.detach().float()
        row = {"step": step, "layer_index": len(self._rows), "layer": layer,
               "kind": type(module).__name__, "act_mean": float(values.mean()),
               "act_std": float(values.std()), "inactive": inactive_fraction(module, values),
               "grad_mean": math.nan, "grad_std": math.nan}
        self._rows.append(row)
        if not self.histograms or step in self.histograms:
            low, high = float(values.min()), float(values.max())
            high = max(high, low + 1e-6)  # all-equal outputs (e.g. all dead) still bin
            counts = torch.histc(values, self.histogram_bins, min=low, max=high).cpu()
            self.histograms.setdefault(step, []).append((layer, counts, low, high))
        if output.requires_grad:
            output.register_hook(partial(self._on_gradient, row))

    @staticmethod
    def _on_gradient(row: dict[str, Any], grad: torch.Tensor) -> None:
        grad = grad.detach().float()
        row["grad_mean"], row["grad_std"] = float(grad.mean()), float(grad.std())

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if not self._hooks:
            return
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.records.extend(self._rows)
        if self._rows:
            self._log(trainer, self._rows)
        self._rows = []

    @rank_zero_only
    def _log(self, trainer: L.Trainer, rows: list[dict[str, Any]]) -> None:
        metrics = {}
        for row in rows:
            prefix = f"{row['layer_index']:02d}_{row['layer']}"
            metrics[f"activations/{prefix}/mean"] = row["act_mean"]
            metrics[f"activations/{prefix}/std"] = row["act_std"]
            if not math.isnan(row["inactive"]):
                what = "dead" if row["kind"] in ("ReLU", "ReLU6") else "saturated"
                metrics[f"activations/{prefix}/{what}"] = row["inactive"]
            if not math.isnan(row["grad_std"]):
                metrics[f"gradients/{prefix}/std"] = row["grad_std"]
        for logger in trainer.loggers:  # at the step the statistics describe
            logger.log_metrics(metrics, step=rows[0]["step"])

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # trainer.log_dir is a broadcast under DDP: every rank asks, rank 0 writes.
        self.write(trainer.log_dir)

    @rank_zero_only
    def write(self, log_dir: str | None) -> None:
        if not self.records or log_dir is None:
            return
        out_dir = Path(log_dir)
        os.makedirs(out_dir, exist_ok=True)
        with open(out_dir / "activation_stats.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.records)
        plot_activation_stats(self.records, self.histograms, out_dir / "activation_stats.png")
