"""Entry point of the 2-node torchrun test (tests/test_multinode.py).

Runs `experiments.cifar_mlp` unchanged (flags from the command line); the test adds
`RankReport` as a trainer callback, so every process prints one line saying what it was
in the job, which images it trained on and the weights it ended with, for the test to
compare across the two nodes.
"""

import hashlib
import json

import lightning as L
import torch

from experiments import cifar_mlp

REPORT_PREFIX = "MULTINODE_REPORT "


class RankReport(L.Callback):
    """Prints this process's place in the job, its first-epoch images and final weights."""

    def __init__(self) -> None:
        self.first_epoch_images = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if trainer.current_epoch == 0:
            self.first_epoch_images += len(batch[1])

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # DDP averages gradients, so every rank must end with bit-identical weights.
        weights = torch.cat([p.detach().cpu().flatten() for p in pl_module.parameters()])
        report = {
            "global_rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            "world_size": trainer.world_size,
            "environment": type(trainer.strategy.cluster_environment).__name__,
            "first_epoch_images": self.first_epoch_images,
            "weights_sha256": hashlib.sha256(weights.numpy().tobytes()).hexdigest(),
        }
        print(REPORT_PREFIX + json.dumps(report), flush=True)


if __name__ == "__main__":
    results = cifar_mlp.main()  # flags from sys.argv, as a user's torchrun command has them
    print(f"TEST_ACC {results['test/acc']:.6f}", flush=True)
