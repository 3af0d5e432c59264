"""FreezeBackbone: train only the classifier head for the first N epochs, then everything.

The backbone is everything in `pl_module.net` except `net.get_classifier()`. While frozen,
its parameters have `requires_grad=False` (no gradients, so the optimizer, weight decay
included, leaves them alone) and its batch-norm layers run in eval mode, so their running
statistics stay those of the pretrained model: the backbone is a fixed feature extractor.
From epoch N on everything trains. All parameters are in the optimizer from the start, so
the backbone then trains with the current learning rate of the schedule, with no new
parameter group to add. (Lightning's BackboneFinetuning instead adds the backbone as a new
group with its own learning rate, which schedules made at the start do not drive.)

The state is set again at the start of every epoch and of every fit, so resuming from a
checkpoint puts it back. With DDP, train with `--trainer.strategy
ddp_find_unused_parameters_true`: frozen parameters produce no gradients to reduce.
"""

import lightning as L
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def backbone_modules(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Module]]:
    """(parameters, batch-norm layers) of `net` outside its classifier head."""
    head = net.get_classifier()
    head_params = {id(p) for p in head.parameters()}
    head_modules = {id(m) for m in head.modules()}
    params = [p for p in net.parameters() if id(p) not in head_params]
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm) and id(m) not in head_modules]
    return params, norms


class FreezeBackbone(L.Callback):
    """Freeze everything but the classifier head for the first `epochs` training epochs."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def _apply(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        frozen = trainer.current_epoch < self.epochs
        params, norms = backbone_modules(pl_module.net)
        for param in params:
            param.requires_grad_(not frozen)
        for norm in norms:
            norm.train(not frozen)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._apply(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._apply(trainer, pl_module)
