"""RunEstimate: before training, say how long the whole run will take on this machine.

A few real training steps are timed on a copy of the network (a small batch of the real
training images, forward and backward, after one warm-up step), and the time of the whole
run follows: every epoch's training images, plus validation (a forward pass, about a third
of a training step per image). The copy and a forked random state leave the run itself
untouched, so a run with the estimate is identical to one without.

On a CPU, a run longer than about an hour gets one more line with quicker commands (a
CPU recipe, a subset of the data), before any time is spent.
"""

import copy
import math
import time

import lightning as L
import torch
import torch.nn.functional as F

from src.core.clock import synchronize

LONG_ON_CPU_S = 3600.0


def format_duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 20 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class RunEstimate(L.Callback):
    """`quicker`: the commands to suggest when the run is long on a CPU (may be empty)."""

    def __init__(self, quicker: list[str] | None = None, sample: int = 64):
        self.quicker = quicker or []
        self.sample = sample
        self.seconds: float | None = None  # the estimate, once made

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        train_set = getattr(datamodule, "train_set", None)
        if not trainer.is_global_zero or train_set is None or trainer.fast_dev_run:
            return
        per_image = self.seconds_per_training_image(trainer, pl_module, datamodule)
        n_train = len(train_set.labels) / trainer.world_size
        val_set = getattr(datamodule, "val_set", None)
        n_val = len(val_set.labels) / trainer.world_size if val_set is not None else 0
        epochs = self.epochs(trainer, n_train, datamodule)
        start = trainer.current_epoch  # a resumed run has fewer epochs left
        remaining = max(epochs - start, 0)
        epoch_s = per_image * (n_train + n_val / 3)
        self.seconds = remaining * epoch_s
        device = pl_module.device.type
        print(
            f"Estimated time: about {format_duration(self.seconds)} for {remaining:g} "
            f"epoch(s) on this machine ({device}: {format_duration(epoch_s)} per epoch of "
            f"{n_train:,.0f} training and {n_val:,.0f} validation images, from a few timed "
            f"steps)", flush=True)
        if device == "cpu" and self.seconds > LONG_ON_CPU_S and self.quicker:
            print(f"That is long on a CPU. Quicker: {'; or '.join(self.quicker)}", flush=True)

    @staticmethod
    def epochs(trainer: L.Trainer, n_train: float, datamodule: object) -> float:
        """Epochs the run will train: max_epochs, or max_steps in epochs when it is shorter."""
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
        if trainer.max_steps not in (None, -1):
            batch = getattr(getattr(datamodule, "hparams", None), "batch_size", 1)
            steps_per_epoch = max(math.ceil(n_train / batch / trainer.accumulate_grad_batches), 1)
            epochs = min(epochs, trainer.max_steps / steps_per_epoch)
        return epochs if math.isfinite(epochs) else 0.0

    def seconds_per_training_image(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                   datamodule: object) -> float:
        """Time of a training step per image: forward, loss, backward on a copy."""
        images = datamodule.train_set.images[:self.sample]
        labels = datamodule.train_set.labels[:self.sample]
        network = copy.deepcopy(pl_module.net).train()  # the run's own weights stay as they are
        device = pl_module.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            # As Lightning feeds the run: in the precision's dtype (bf16-true weights).
            inputs = trainer.precision_plugin.convert_input(
                datamodule.normalize(images.to(device)))
            targets = labels.to(device)
            times = []
            for _ in range(3):  # the first one warms up (allocations, kernel choice)
                synchronize(device)
                start = time.perf_counter()
                with trainer.precision_plugin.forward_context():
                    # Plain cross-entropy: the same cost as the run's loss, without its
                    # state (class weights "auto" are set only once fitting starts).
                    loss = F.cross_entropy(network(inputs).float(), targets)
                loss.backward()
                synchronize(device)
                times.append(time.perf_counter() - start)
                network.zero_grad(set_to_none=True)
        del network
        return min(times[1:]) / len(labels)
