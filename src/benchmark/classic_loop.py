"""A recipe trained the way the common CIFAR repositories train it, without Lightning.

The loop of kuangliu/pytorch-cifar and its many descendants: a Dataset holding the
decoded uint8 images that hands out one PIL image per item (as
torchvision.datasets.CIFAR10 does), per-image transforms (RandomCrop(32, padding=4),
RandomHorizontalFlip, ToTensor, Normalize) in DataLoader worker processes, a plain
PyTorch training loop, validation after every epoch, the best weights by validation
accuracy kept and tested once at the end.

Everything else is the recipe's, built by our own factories so that the two ways of
training differ only in the data path and the loop: the network (`build_network`), the
loss, the optimizer and its parameter groups, the learning-rate schedule (stepped per
optimizer step or per epoch, as it says), the batch size, the epochs, the train /
validation / test split and the normalization constants.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from src.benchmark.plain_loop import autocast
from src.core.clock import device_time
from src.core.errors import ConfigError
from src.datamodules.augment import AugmentationPipeline, build_augmentations
from src.datamodules.classic import PILImages, classic_loader, per_image_transform
from src.datamodules.sources import ImageSet
from src.modules.losses import LossSettings, build_loss
from src.modules.networks import NetworkSettings, NetworkShape, build_network
from src.modules.optimizers import OptimizerSettings, make_optimizer
from src.modules.schedulers import RunLength, ScheduleSettings, make_scheduler


@dataclass(frozen=True)
class ClassicRecipe:
    """The settings the loop trains with, taken from a parsed recipe."""

    network: NetworkSettings
    shape: NetworkShape
    loss: LossSettings
    optimizer: OptimizerSettings
    schedule: ScheduleSettings
    augmentations: AugmentationPipeline  # of the training images, applied per image
    epochs: int
    batch_size: int
    eval_batch_size: int


@dataclass(frozen=True)
class ClassicData:
    """The splits (uint8 images) and the normalization constants of the recipe's data."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    mean: torch.Tensor  # [C] shift, 0..1 units
    std: torch.Tensor  # [C] divisor, 0..1 units


@dataclass(frozen=True)
class ClassicResult:
    test_acc: float  # of the best weights by validation accuracy
    best_val_acc: float
    best_epoch: int  # 1-based
    val_acc: list[float]  # after each epoch
    train_s: float  # the training epochs, their validation passes excluded


@torch.no_grad()
def loader_accuracy(net: nn.Module, loader: DataLoader, device: torch.device,
                    precision: str) -> float:
    """Share of the loader's images classified as their labels, in eval mode."""
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        with autocast(device, precision):
            logits = net(images)  # [B, K]
        correct += (logits.argmax(dim=-1) == labels).sum()
        total += len(labels)
    return correct.item() / total


def train_classic(recipe: ClassicRecipe, data: ClassicData, seed: int, device: torch.device,
                  precision: str, num_workers: int) -> ClassicResult:
    """Train, validate after every epoch, test the best weights by validation once."""
    torch.manual_seed(seed)  # initialization, shuffling, and the workers' augmentation draws
    net = build_network(recipe.network, recipe.shape).to(device)
    criterion = build_loss(recipe.loss, recipe.shape.num_classes)
    optimizer = make_optimizer(net, recipe.optimizer)
    size, pin = recipe.shape.image_size, device.type == "cuda"
    train_transform = per_image_transform(recipe.augmentations, size, data.mean, data.std,
                                          pil_input=True)
    eval_transform = per_image_transform(build_augmentations([], recipe.shape.num_classes),
                                         size, data.mean, data.std, pil_input=True)
    train_loader = classic_loader(data.train.images, data.train.labels, train_transform,
                                  recipe.batch_size, train=True, num_workers=num_workers,
                                  pin_memory=pin, dataset_class=PILImages)
    val_loader, test_loader = (
        classic_loader(split.images, split.labels, eval_transform, recipe.eval_batch_size,
                       train=False, num_workers=num_workers, pin_memory=pin,
                       dataset_class=PILImages) for split in (data.val, data.test))
    run = RunLength(total_steps=recipe.epochs * len(train_loader),
                    steps_per_epoch=len(train_loader))
    schedules = make_scheduler(optimizer, recipe.schedule, run)
    if any(schedule.monitor is not None for schedule in schedules):
        raise ConfigError("the classic loop steps schedules by step or epoch only, not on a "
                          "validation metric (reduce_on_plateau)")
    val_acc: list[float] = []
    best_state, train_s = None, 0.0
    for _ in range(recipe.epochs):
        net.train()
        start = device_time(device)
        for images, labels in train_loader:
            images = images.to(device, non_blocking=pin)
            labels = labels.to(device, non_blocking=pin)
            with autocast(device, precision):
                loss = criterion(net(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for schedule in schedules:
                if schedule.interval == "step":
                    schedule.scheduler.step()
        for schedule in schedules:
            if schedule.interval == "epoch":
                schedule.scheduler.step()
        train_s += device_time(device) - start
        val_acc.append(loader_accuracy(net, val_loader, device, precision))
        if val_acc[-1] > max(val_acc[:-1], default=-1.0):  # strictly better, as ModelCheckpoint
            best_state = copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    best_epoch = val_acc.index(max(val_acc)) + 1
    return ClassicResult(test_acc=loader_accuracy(net, test_loader, device, precision),
                         best_val_acc=val_acc[best_epoch - 1], best_epoch=best_epoch,
                         val_acc=val_acc, train_s=train_s)
