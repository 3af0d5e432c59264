"""Overfit one sample or one batch: can the model drive its training accuracy to 100%?

The first sanity check of a new pipeline: a model that cannot memorize a single batch
has a bug (labels shuffled against images, a loss that does not match the outputs,
a learning rate far off, a network with no capacity). `--overfit.mode one_batch` trains
on one fixed batch of training images, `one_sample` on one image (batch-norm layers
then use their running statistics), for at most
`--overfit.steps` steps with no augmentation, and reports in one line whether training
accuracy reached 100%. "Memorized" means right and confident: 100% training accuracy
with a loss below half the loss of uniform predictions (ln(K) / 2 for cross-entropy),
so a constant guess that happens to be right at chance level does not count. Training
stops once the batch has stayed memorized for `HOLD_STEPS` steps in a row. No
validation, checkpoints or test: one batch is no data set.

It also repairs Lightning's own `--trainer.overfit_batches N` for our loaders: Lightning
fixes the batches by turning off a DataLoader's shuffling sampler, which our
TensorBatchLoader does not have, so every epoch would bring different batches; here the
shuffle order is frozen to that of the first epoch instead (a fixed random batch, never
a batch of one class).
"""

import math
import warnings
from collections.abc import Iterator

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from src.callbacks.initial_loss import uniform_prediction_loss
from src.core.errors import check_range, lookup
from src.datamodules.base import ImageDataModule

OVERFIT_MODES = ("none", "one_sample", "one_batch")
HOLD_STEPS = 10  # steps in a row memorized before training stops early
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
CONFIDENT = 0.5  # memorized: loss below this fraction of the uniform-prediction loss


class RepeatedBatch:
    """The same (images, labels) batch `length` times: a training loader for the Trainer."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], length: int):
        self.batch = batch
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(self.length):
            yield self.batch


def fixed_batch(datamodule: ImageDataModule, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch (or one image) of the training split, drawn at random with the split
    seed, normalized like every training batch but never augmented.

    Returns images [B, C, H, W] float and labels [B] (B = 1 for "one_sample").
    """
    datamodule.prepare_data()
    datamodule.setup("fit")
    train = datamodule.train_set
    generator = torch.Generator().manual_seed(datamodule.hparams.split_seed)
    order = torch.randperm(len(train.labels), generator=generator)
    chosen = order[:datamodule.hparams.batch_size] if mode == "one_batch" else order[:1]
    return datamodule.normalize(train.images[chosen]), train.labels[chosen]


class OverfitCheck(L.Callback):
    """Overfit one sample or one batch instead of training (see the module docstring).

    Args:
        mode: none (train normally), one_sample or one_batch.
        steps: most training steps on the sample or batch; stops early once memorized.
    """

    def __init__(self, mode: str = "none", steps: int = 200):
        self.mode = lookup({name: name for name in OVERFIT_MODES}, mode, "overfit mode")
        check_range("overfit.steps", steps, 1)
        self.steps = steps
        self.streak = 0  # steps in a row, up to the latest, with the batch memorized
        self.chance_loss: float | None = None  # loss of uniform predictions on the batch
        self.accuracies: list[float] = []  # training accuracy of each step
        self.losses: list[float] = []
        self._logits: torch.Tensor | None = None
        self._hook = None

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            self._hook = pl_module.register_forward_hook(self._catch_logits)
        if self.mode == "one_sample":
            # A batch of one image has no batch statistics: batch-norm layers normalize
            # with their running statistics (mean 0, variance 1 at initialization).
            for module in pl_module.modules():
                if isinstance(module, BATCH_NORMS):
                    module.eval()
        if not self.active and trainer.overfit_batches > 0:
            self._freeze_batch_order(trainer)

    @staticmethod
    def _freeze_batch_order(trainer: L.Trainer) -> None:
        loader = trainer.train_dataloader
        if getattr(loader, "shuffle", False) and hasattr(loader, "epoch_fn"):
            loader.epoch_fn = lambda: 0  # every epoch: the first epoch's permutation
            rank_zero_warn("--trainer.overfit_batches: every epoch now trains on the same "
                           "batches (the first epoch's order); augmentations still apply. "
                           "For the overfit sanity check use --overfit.mode one_batch.")

    def _catch_logits(self, module, inputs, output: torch.Tensor) -> None:
        self._logits = output.detach()  # [B, num_classes]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if self._hook is None or self._logits is None:
            return
        labels = batch[1]
        accuracy = float((self._logits.argmax(dim=-1) == labels).float().mean())
        self._logits = None
        self.accuracies.append(accuracy)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss) * trainer.accumulate_grad_batches)
        if self.chance_loss is None:
            self.chance_loss = uniform_prediction_loss(pl_module, labels,
                                                       pl_module.hparams.num_classes)
        memorized = accuracy == 1.0 and self.losses[-1] < CONFIDENT * self.chance_loss
        self.streak = self.streak + 1 if memorized else 0
        if self.streak >= HOLD_STEPS:
            trainer.should_stop = True

    @property
    def succeeded(self) -> bool:
        """Memorized at the last step (and for the `streak` steps before it)."""
        return self.streak > 0

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def run(self, trainer: L.Trainer, model: L.LightningModule,
            datamodule: ImageDataModule) -> dict[str, float]:
        """Fit on the fixed sample or batch, print the verdict in one line, return numbers."""
        images, labels = fixed_batch(datamodule, self.mode)
        # One batch is no validation set: nothing to select, stop on or save.
        trainer.callbacks = [callback for callback in trainer.callbacks
                             if not isinstance(callback, EarlyStopping | Checkpoint)]
        # One epoch of `steps` batches; the LR schedule is sized to it.
        trainer.fit_loop.max_epochs = 1
        with warnings.catch_warnings():  # no validation here is the point, not a mistake
            warnings.filterwarnings("ignore", "You defined a `validation_step` but have no")
            trainer.fit(model, train_dataloaders=RepeatedBatch((images, labels), self.steps))
        if trainer.interrupted:
            raise SystemExit(130)
        what = ("one sample (one training image)" if self.mode == "one_sample" else
                f"one batch ({len(labels)} training images)")
        steps_run = len(self.accuracies)
        final_accuracy = self.accuracies[-1] if self.accuracies else math.nan
        final_loss = self.losses[-1] if self.losses else math.nan
        best_accuracy = max(self.accuracies, default=math.nan)
        threshold = CONFIDENT * (self.chance_loss or math.nan)
        if self.succeeded:
            verdict = (f"training accuracy reached 100% (steps {steps_run - self.streak + 1}"
                       f"-{steps_run} at 100% with loss < {threshold:.3f}; final loss "
                       f"{final_loss:.4f}): the model and the training loop can fit.")
        else:
            verdict = (f"training accuracy did NOT reach 100% with loss < {threshold:.3f} in "
                       f"{steps_run} steps (last {100 * final_accuracy:.2f}%, best "
                       f"{100 * best_accuracy:.2f}%, final loss {final_loss:.4f}): check "
                       f"labels, loss, learning rate and capacity, or allow more "
                       f"--overfit.steps.")
        if trainer.is_global_zero:
            print(f"Overfit {what}, no augmentation: {verdict}", flush=True)
        return {"overfit/acc": final_accuracy, "overfit/loss": final_loss,
                "overfit/reached_100": float(self.succeeded),
                "overfit/steps": float(steps_run)}


def find_overfit_check(trainer: L.Trainer) -> OverfitCheck | None:
    return next((callback for callback in trainer.callbacks
                 if isinstance(callback, OverfitCheck)), None)
