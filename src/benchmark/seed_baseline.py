"""The seed-style baseline: how the course's starting code trains an MLP on CIFAR-10.

A Dataset that converts and normalizes one image at a time in Python, a DataLoader in the
main process (batch 32), an MLP 3072-100-100-10 with BatchNorm, Adam and StepLR, in a
plain PyTorch loop. Our reconstruction of the seeds' setup (their exact StepLR values are
not recorded here: step 5 epochs, factor 0.5), used as the baseline of the time-to-52%
comparison in `experiments.benchmark`.
"""

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from src.benchmark.timing import accuracy
from src.datamodules.base import channel_stats


class PerImageNormalized(Dataset):
    """uint8 images [N, C, H, W] -> (float image normalized on its own, label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor):
        self.images, self.labels = images, labels
        self.mean, self.std = mean[:, None, None], std[:, None, None]  # [C, 1, 1]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float() / 255
        return (image - self.mean) / self.std, int(self.labels[index])


def seed_mlp(in_features: int = 3072, widths: tuple[int, ...] = (100, 100),
             num_classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in widths:
        layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU()]
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, num_classes))


def seed_time_to_accuracy(train_images: torch.Tensor, train_labels: torch.Tensor,
                          test_images: torch.Tensor, test_labels: torch.Tensor,
                          target: float, max_epochs: int, seed: int = 0,
                          widths: tuple[int, ...] = (100, 100), batch_size: int = 32,
                          lr: float = 1e-3) -> list[tuple[int, float, float]]:
    """Train on the CPU until the test accuracy reaches `target` (checked after each
    epoch, off the clock) or `max_epochs`; returns (epoch, training seconds, test
    accuracy) after each epoch."""
    torch.manual_seed(seed)
    mean, std = channel_stats(train_images)
    in_features = train_images[0].numel()
    num_classes = int(train_labels.max()) + 1
    model = seed_mlp(in_features, widths, num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    loader = DataLoader(PerImageNormalized(train_images, train_labels, mean, std),
                        batch_size=batch_size, shuffle=True, num_workers=0)
    loss_fn = nn.CrossEntropyLoss()
    normalize_mean = (mean * 255)[None, :, None, None]
    normalize_std = (std * 255)[None, :, None, None]

    def normalize(images: torch.Tensor) -> torch.Tensor:
        return (images.float() - normalize_mean) / normalize_std

    history, seconds = [], 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        start = time.perf_counter()
        for images, labels in loader:
            if len(labels) < 2:  # batch norm cannot train on one image
                continue
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
        schedule.step()
        seconds += time.perf_counter() - start
        model.eval()
        value = accuracy(model, test_images, test_labels, normalize, torch.device("cpu"))
        history.append((epoch, seconds, value))
        if value >= target:
            break
    return history
