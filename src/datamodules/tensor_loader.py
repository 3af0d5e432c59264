"""Batches built by indexing in-memory tensors: no Dataset, no per-sample Python.

Each epoch draws a permutation from (seed, epoch), identical on every DDP rank, and each
rank takes its own disjoint shard of it: together the shards hold every image exactly
once. Every rank splits its shard into the same number of nearly equal training batches
(DDP hangs when one rank runs a step fewer than the others). Evaluation shards are
contiguous and unpadded, so metrics synced across ranks count every image exactly once.

The loader is stateful in Lightning's sense (`state_dict` / `load_state_dict`): Lightning
saves how many batches of the current epoch were handed out in every checkpoint, and a
run resumed from a mid-epoch checkpoint skips exactly those batches of the same
permutation instead of starting the epoch over.
"""

from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from src.core.errors import ConfigError


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
        # Progress through the epoch being iterated, as saved in checkpoints.
        self._epoch = -1
        self._batches_yielded = 0
        # (epoch, batches) from a checkpoint, consumed by the next iteration of that epoch.
        self._resume_at: tuple[int, int] | None = None

    def shard_indices(self, epoch: int | None = None) -> torch.Tensor:
        """The indices this rank visits in `epoch` (default: the current one), in order."""
        n = len(self.labels)
        if self.shuffle:
            epoch = self.epoch_fn() if epoch is None else epoch
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=generator)
            # Shard sizes differ by at most one image; the batch count evens them out.
            return order[n * self.rank // self.world_size:n * (self.rank + 1) // self.world_size]
        bounds = [n * r // self.world_size for r in range(self.world_size + 1)]
        return torch.arange(bounds[self.rank], bounds[self.rank + 1])

    def __len__(self) -> int:
        if not self.shuffle:
            return -(-self._eval_shard_size() // self.batch_size)
        smallest_shard = len(self.labels) // self.world_size
        if self.drop_last:  # full batches only, the same count on every rank
            return smallest_shard // self.batch_size
        largest_shard = -(-len(self.labels) // self.world_size)
        batches = -(-largest_shard // self.batch_size)
        # Batch norm cannot train on a batch of one image: with tiny shards, fewer (larger)
        # batches keep at least two images in each.
        if self.batch_size > 1 and smallest_shard < 2 * batches:
            batches = max(1, smallest_shard // 2)
        return batches

    def split_batches(self, indices: torch.Tensor) -> list[torch.Tensor]:
        """This rank's shard -> its len(self) batches of indices.

        Training: nearly equal sizes (differing by at most one), so every image of the
        shard is used and no final batch is tiny (drop_last: exactly batch_size each).
        Evaluation: batch_size each, the last one smaller.
        """
        if self.shuffle and not self.drop_last and len(self) > 0:
            return list(torch.tensor_split(indices, len(self)))
        return [indices[start:start + self.batch_size]
                for start in range(0, len(self) * self.batch_size, self.batch_size)]

    def _eval_shard_size(self) -> int:
        n = len(self.labels)
        return n * (self.rank + 1) // self.world_size - n * self.rank // self.world_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch_fn()
        start = 0
        if self._resume_at is not None:
            saved_epoch, saved_batches = self._resume_at
            self._resume_at = None
            # A checkpoint saved after its epoch ended says nothing about the next one.
            start = saved_batches if saved_epoch == epoch else 0
        self._epoch, self._batches_yielded = epoch, start
        # One host-to-device copy of the epoch's indices; batches are views of it.
        batches = self.split_batches(self.shard_indices(epoch).to(self.images.device))
        for batch_number in range(start, len(self)):
            batch = batches[batch_number]
            # Counted before the yield: when the trainer holds batch k, k + 1 were handed out.
            self._batches_yielded = batch_number + 1
            yield self.images[batch], self.labels[batch]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "batches_yielded": self._batches_yielded,
                "batches_per_epoch": len(self), "world_size": self.world_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_world = state_dict.get("world_size", self.world_size)
        if saved_world != self.world_size:
            # Another number of processes shards the epoch's order differently: continue
            # the interrupted epoch at the same fraction instead of the exact batch.
            saved, done = state_dict["batches_per_epoch"], state_dict["batches_yielded"]
            position = done * len(self) // saved if saved else 0
            if 0 < done < saved:
                rank_zero_warn(
                    f"resumed on {self.world_size} process(es) instead of {saved_world}: the "
                    f"interrupted epoch continues at batch {position} of {len(self)} (it "
                    f"stopped at {done} of {saved}), so a few of its images may be seen twice "
                    f"or not at all, and the run is no longer identical to an unbroken one")
            self._resume_at = (state_dict["epoch"], position)
            return
        if state_dict["batches_per_epoch"] != len(self):
            raise ConfigError(
                f"the checkpoint was saved with {state_dict['batches_per_epoch']} training "
                f"batches per epoch, this run has {len(self)}; resume with the same data and "
                f"batch size")
        self._resume_at = (state_dict["epoch"], state_dict["batches_yielded"])
