"""Batches built by indexing in-memory tensors: no Dataset, no per-sample Python.

Each epoch draws a permutation from (seed, epoch), identical on every DDP rank, and each
rank takes its own disjoint shard of it, so no image repeats within an epoch across
ranks. Evaluation shards are contiguous and unpadded, so metrics synced across ranks
count every image exactly once.
"""

from collections.abc import Callable, Iterator

import torch


class TensorBatchLoader:
    """Iterable of (images [B, C, H, W] uint8, labels [B] int64) batches.

    images, labels: the whole split, on any device (CPU, or the GPU to skip host copies).
    epoch_fn: returns the current epoch, so the shuffle order is reproducible on resume.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1,
                 epoch_fn: Callable[[], int] = lambda: 0):
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch_fn = epoch_fn

    def shard_indices(self) -> torch.Tensor:
        """The indices this rank visits this epoch, in order."""
        n = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch_fn())
            order = torch.randperm(n, generator=generator)
            # Equal shard sizes keep DDP ranks in step; at most world_size-1 images of
            # a shuffled epoch are left out, a different few each epoch.
            per_rank = n // self.world_size
            return order[self.rank * per_rank:(self.rank + 1) * per_rank]
        bounds = [n * r // self.world_size for r in range(self.world_size + 1)]
        return torch.arange(bounds[self.rank], bounds[self.rank + 1])

    def __len__(self) -> int:
        if not self.shuffle:
            return -(-self._eval_shard_size() // self.batch_size)
        n = len(self.labels) // self.world_size
        # A final training batch of one image is always dropped: batch norm cannot
        # normalize a single sample, and shuffling makes it a different image each epoch.
        if self.drop_last or n % self.batch_size == 1:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def _eval_shard_size(self) -> int:
        n = len(self.labels)
        return n * (self.rank + 1) // self.world_size - n * self.rank // self.world_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = self.shard_indices().to(self.images.device)
        for batch_number in range(len(self)):
            batch = indices[batch_number * self.batch_size:(batch_number + 1) * self.batch_size]
            yield self.images[batch], self.labels[batch]
