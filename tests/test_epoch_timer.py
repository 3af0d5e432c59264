"""EpochTimer: seconds of each training epoch, without the validation run inside it."""

import csv

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.callbacks import epoch_timer
from src.callbacks.epoch_timer import EpochTimer

TRAIN_SECONDS, VAL_SECONDS = 1.0, 100.0  # per batch, on a fake clock


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ClockedModel(L.LightningModule):
    """Each training batch 'takes' TRAIN_SECONDS, each validation batch VAL_SECONDS."""

    def __init__(self, clock: FakeClock):
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.clock = clock

    def training_step(self, batch, batch_idx):
        self.clock.now += TRAIN_SECONDS
        loss = self.layer(batch[0]).square().mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.clock.now += VAL_SECONDS

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(batches: int) -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(4 * batches, 2)), batch_size=4)


def fit(tmp_path, monkeypatch, enabled: bool) -> list[dict[str, str]]:
    clock = FakeClock()
    monkeypatch.setattr(epoch_timer.time, "perf_counter", clock)
    trainer = L.Trainer(max_epochs=2, default_root_dir=tmp_path, accelerator="cpu",
                        callbacks=[EpochTimer(enabled=enabled)], enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        num_sanity_val_steps=2, logger=L.pytorch.loggers.CSVLogger(tmp_path))
    trainer.fit(ClockedModel(clock), loader(3), loader(2))
    with open(next(tmp_path.rglob("metrics.csv"))) as file:
        return list(csv.DictReader(file))


def test_each_epoch_logs_its_training_time_without_validation(tmp_path, monkeypatch):
    rows = fit(tmp_path, monkeypatch, enabled=True)
    seconds = [float(row["time/train_epoch_s"]) for row in rows if row.get("time/train_epoch_s")]
    # 3 training batches per epoch; the sanity check and both validations are left out.
    assert seconds == [3 * TRAIN_SECONDS, 3 * TRAIN_SECONDS]
    epochs = [int(row["epoch"]) for row in rows if row.get("time/train_epoch_s")]
    assert epochs == [0, 1]


def test_disabled_timer_logs_nothing(tmp_path, monkeypatch):
    rows = fit(tmp_path, monkeypatch, enabled=False)
    assert not any(row.get("time/train_epoch_s") for row in rows)
