"""freeze_backbone_epochs: only the head trains for N epochs, then the whole network."""

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.callbacks import FreezeBackbone
from src.callbacks.freeze_backbone import backbone_modules
from src.core.errors import ConfigError
from src.modules import ImageClassifier


class Snapshots(L.Callback):
    """Copies of the backbone, head and batch-norm statistics at the end of every epoch."""

    def __init__(self):
        self.epochs: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(32, 3, 32, 32, generator=generator)
    targets = torch.randint(0, 4, (32,), generator=generator)
    return DataLoader(TensorDataset(images, targets), batch_size=8)


def changed(before: dict, after: dict, keys) -> set[str]:
    return {key for key in keys if not torch.equal(before[key], after[key])}


@pytest.mark.parametrize("arch", ["timm", "resnet18"])
def test_backbone_is_frozen_for_n_epochs_then_trains(arch):
    torch.manual_seed(0)
    tiny = {"timm_model": "test_resnet"} if arch == "timm" else {"resnet_widths": (8, 8, 8, 8)}
    model = ImageClassifier(arch=arch, **tiny, num_classes=4, freeze_backbone_epochs=1,
                            scheduler="constant", lr=0.05)
    initial = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    head_keys = {"fc.weight", "fc.bias"} if arch == "timm" else {"head.weight", "head.bias"}
    backbone_keys = set(initial) - head_keys
    running_stats = {k for k in backbone_keys if "running_" in k}
    snapshots = Snapshots()
    L.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False,
              callbacks=[snapshots]).fit(model, loader())
    frozen_epoch, free_epoch = snapshots.epochs

    assert changed(initial, frozen_epoch, backbone_keys) == set()  # weights and BN stats
    assert changed(initial, frozen_epoch, head_keys) == head_keys
    # After unfreezing the optimizer (built once, with every parameter) trains the backbone.
    assert len(changed(frozen_epoch, free_epoch, backbone_keys - running_stats)) > 0.5 * len(
        backbone_keys - running_stats)
    assert changed(frozen_epoch, free_epoch, running_stats) == running_stats
    assert all(p.requires_grad for p in model.parameters())


def test_backbone_split_leaves_the_head_out():
    net = ImageClassifier(resnet_widths=(8, 8, 8, 8)).net
    params, norms = backbone_modules(net)
    head_ids = {id(p) for p in net.head.parameters()}
    assert not head_ids & {id(p) for p in params}
    assert len(params) + len(head_ids) == len(list(net.parameters()))
    assert len(norms) == sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_callback_is_added_only_when_asked():
    assert ImageClassifier(resnet_widths=(8, 8, 8, 8)).configure_callbacks() == []
    callbacks = ImageClassifier(resnet_widths=(8, 8, 8, 8),
                                freeze_backbone_epochs=3).configure_callbacks()
    assert [type(c) for c in callbacks] == [FreezeBackbone] and callbacks[0].epochs == 3


def test_negative_freeze_epochs_fail():
    with pytest.raises(ConfigError, match="freeze_backbone_epochs=-1 is out of range"):
        ImageClassifier(resnet_widths=(8, 8, 8, 8), freeze_backbone_epochs=-1)
