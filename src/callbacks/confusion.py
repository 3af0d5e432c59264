"""TestConfusionMatrix: confusion matrix and per-class accuracy of every test run.

After `trainer.test` (the entry points test the best-by-validation checkpoint), writes
<log_dir>/test_confusion.png, test_confusion.csv and test_per_class.csv. The logits are
caught with a forward hook on the model during `test_step`, so testing costs no extra
forward pass.
"""

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from src.reporting.class_report import write_class_report


class TestConfusionMatrix(L.Callback):
    """Write the test split's confusion matrix and per-class accuracy after testing.

    Args:
        enabled: collect and write them.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._logits: torch.Tensor | None = None
        self._hook = None

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        num_classes = pl_module.hparams.num_classes
        self.confusion = MulticlassConfusionMatrix(num_classes).to(pl_module.device)
        self.class_accuracy = MulticlassAccuracy(num_classes, average=None).to(pl_module.device)
        self._hook = pl_module.register_forward_hook(self._catch_logits)

    def _catch_logits(self, module, inputs, output: torch.Tensor) -> None:
        self._logits = output.detach()  # [B, num_classes]

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                          batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._hook is None or self._logits is None:
            return
        labels = batch[1]  # [B], after the transfer to the device
        self.confusion.update(self._logits, labels)
        self.class_accuracy.update(self._logits, labels)
        self._logits = None

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._hook is None:
            return
        self._hook.remove()
        self._hook = None
        confusion = self.confusion.compute()  # synced across processes
        class_accuracy = self.class_accuracy.compute()
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask
        if not trainer.is_global_zero or log_dir is None:
            return
        datamodule = trainer.datamodule
        classes = list(getattr(datamodule, "classes", None) or
                       [str(k) for k in range(len(confusion))])
        accuracy = confusion.diag().sum() / confusion.sum().clamp_min(1)
        write_class_report(confusion, class_accuracy, classes, log_dir, "test",
                           f"test accuracy {100 * float(accuracy):.2f}%")
        rank_zero_info(f"Confusion matrix and per-class accuracy: {log_dir}/"
                       f"test_confusion.png, test_confusion.csv, test_per_class.csv")
