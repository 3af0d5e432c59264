"""The seed-style baseline: how the course's starting code trains an MLP on CIFAR-10.

A Dataset that converts and normalizes one image at a time, a DataLoader in the main
process (batch 32), an MLP 3072-100-100-10 with BatchNorm, Adam and StepLR, in a plain
PyTorch loop on the CPU. The pieces are ours, so nothing is written twice: the per-image
Dataset and DataLoader of the classic pipeline (no augmentation: ToDtype, Normalize) and
the MLP of the network registry (Linear -> BatchNorm -> ReLU per hidden layer). Our
reconstruction of the seeds' setup (their exact StepLR values are not recorded here:
step 5 epochs, factor 0.5), used as the baseline of the time-to-52% comparison in
`experiments.benchmark`.
"""

import time

import torch
from torch import nn

from src.benchmark.timing import accuracy
from src.datamodules.augment import build_augmentations
from src.datamodules.base import ImageDataModule
from src.datamodules.classic import classic_loader, per_image_transform
from src.modules.networks import NetworkSettings, NetworkShape, build_network

SEED_WIDTHS = (100, 100)
SEED_BATCH_SIZE = 32


def seed_time_to_accuracy(datamodule: ImageDataModule, target: float, max_epochs: int,
                          seed: int = 0, widths: tuple[int, ...] = SEED_WIDTHS,
                          batch_size: int = SEED_BATCH_SIZE,
                          lr: float = 1e-3) -> list[tuple[int, float, float]]:
    """Train on the datamodule's training split (set up) until the test accuracy reaches
    `target` (checked after each epoch, off the clock) or `max_epochs`; returns (epoch,
    training seconds, test accuracy) after each epoch."""
    torch.manual_seed(seed)
    model = build_network(
        NetworkSettings(arch="mlp", hidden_widths=tuple(widths), norm="batch", act="relu"),
        NetworkShape(datamodule.num_classes, datamodule.in_channels, datamodule.image_size))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    no_augmentation = build_augmentations([], datamodule.num_classes)
    transform = per_image_transform(no_augmentation, datamodule.image_size,
                                    datamodule.mean, datamodule.std)
    train = datamodule.train_set
    loader = classic_loader(train.images, train.labels, transform, batch_size, train=True,
                            num_workers=0)
    loss_fn = nn.CrossEntropyLoss()
    test = datamodule.test_set
    history, seconds = [], 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        start = time.perf_counter()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
        schedule.step()
        seconds += time.perf_counter() - start
        model.eval()
        value = accuracy(model, test.images, test.labels, datamodule.normalize,
                         torch.device("cpu"))
        history.append((epoch, seconds, value))
        if value >= target:
            break
    return history
