"""The training step of `ImageClassifier` in a plain PyTorch loop, without Lightning.

Same network, loss, accuracy metric, optimizer, learning-rate schedule and batches (the
fast path: `TensorBatchLoader` on the device, batch augmentation, normalization) as a
Lightning run of the same module, so the two throughputs differ only by what Lightning
adds around the step.
"""

import contextlib
import time

import torch

from src.core.clock import synchronize
from src.core.errors import ConfigError
from src.datamodules.base import ImageDataModule
from src.datamodules.tensor_loader import TensorBatchLoader
from src.modules.classifier import ImageClassifier
from src.modules.losses import hard_labels
from src.modules.optimizers import make_optimizer
from src.modules.schedulers import RunLength, make_scheduler

AUTOCAST_DTYPES = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16}
PLAIN_LOOP_PRECISIONS = tuple(AUTOCAST_DTYPES)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Lightning's mixed precision, as a context: autocast for bf16-mixed, none for 32."""
    if precision not in AUTOCAST_DTYPES:
        raise ConfigError(f"the plain loop runs precision 32-true or bf16-mixed, not "
                          f"{precision!r}")
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def plain_loop_throughput(model: ImageClassifier, datamodule: ImageDataModule,
                          device: torch.device, precision: str, warmup: int,
                          steps: int) -> float:
    """Images per second over `steps` training steps after `warmup` steps."""
    datamodule.setup("fit")
    model.to(device).train()
    model.use_memory_format(device)  # channels_last on CUDA when asked, as in a fit
    # The module's own optimizer and schedule factories, with the same settings.
    optimizer = make_optimizer(model, model.optimizer_settings)
    epoch = 0  # a new permutation each epoch, as in a Lightning run
    loader = TensorBatchLoader(datamodule.train_set.images.to(device),
                               datamodule.train_set.labels.to(device),
                               datamodule.hparams.batch_size, shuffle=True,
                               seed=datamodule.hparams.split_seed,
                               drop_last=datamodule.hparams.drop_last,
                               epoch_fn=lambda: epoch)
    total = warmup + steps
    run = RunLength(total_steps=total, steps_per_epoch=len(loader), has_validation=False)
    schedules = make_scheduler(optimizer, model.schedule_settings, run)
    if any(schedule.interval != "step" for schedule in schedules):
        raise ConfigError("the plain loop steps per-step schedules only; pick one such as "
                          "onecycle, linear or cosine")
    done, images = 0, 0
    synchronize(device)
    start = time.perf_counter()  # restarted after the warm-up steps
    while done < total:
        for batch_images, labels in loader:
            batch_images, targets = datamodule.augmentations(batch_images, labels)
            batch_images = datamodule.normalize(batch_images)
            with autocast(device, precision):
                logits = model(batch_images)
                loss = model.loss(logits, targets)
            model.train_acc(logits, hard_labels(targets))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for schedule in schedules:
                schedule.scheduler.step()
            done += 1
            if done == warmup:
                synchronize(device)
                start = time.perf_counter()
            elif done > warmup:
                images += len(labels)
            if done == total:
                break
        epoch += 1
    synchronize(device)
    return images / (time.perf_counter() - start)
