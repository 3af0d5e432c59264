"""DDP evaluation counts every image exactly once, so 2 processes report the same numbers
as 1 process evaluating the same checkpoint."""

import csv
import json

import lightning as L
import pytest
import torch
from conftest import write_image_folder
from entry_points import run_entry_point

from src.datamodules.cifar10 import CIFAR10DataModule
from src.datamodules.tensor_loader import TensorBatchLoader
from src.modules import ImageClassifier


def visited(loader: TensorBatchLoader) -> torch.Tensor:
    """The indices a loader yields, read back from labels that equal their index."""
    batches = [labels for _, labels in loader]
    assert len(batches) == len(loader)
    return torch.cat(batches) if batches else torch.empty(0, dtype=torch.int64)


def loaders(n: int, world_size: int, batch_size: int, shuffle: bool, epoch: int = 0):
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    labels = torch.arange(n)
    return [TensorBatchLoader(images, labels, batch_size, shuffle=shuffle, seed=3, rank=rank,
                              world_size=world_size, epoch_fn=lambda: epoch)
            for rank in range(world_size)]


@pytest.mark.parametrize("n", [1, 7, 31, 32, 33, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 8, 64])
def test_eval_shards_cover_every_index_once(n, world_size, batch_size):
    shards = [visited(loader) for loader in loaders(n, world_size, batch_size, shuffle=False)]
    assert torch.equal(torch.cat(shards), torch.arange(n))  # contiguous, in rank order
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1  # unpadded: sizes differ by at most one


@pytest.mark.parametrize("n", [7, 31, 32, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_training_shards_are_disjoint_and_equal(n, world_size):
    for epoch in (0, 1):
        rank_loaders = loaders(n, world_size, 8, shuffle=True, epoch=epoch)
        shards = [visited(loader) for loader in rank_loaders]
        union = torch.cat(shards)
        # Every image exactly once per epoch across the ranks: none repeated, none dropped.
        assert torch.equal(union.sort().values, torch.arange(n))
        sizes = {len(shard) for shard in shards}
        assert max(sizes) - min(sizes) <= 1
        assert len({len(loader) for loader in rank_loaders}) == 1  # ranks stay in step
    first, second = (torch.cat([visited(loader) for loader in
                                loaders(32, 2, 8, shuffle=True, epoch=epoch)])
                     for epoch in (0, 1))
    assert not torch.equal(first, second)  # a new order each epoch


def last_value(rows: list[dict[str, str]], key: str) -> float:
    return float([row[key] for row in rows if row.get(key)][-1])


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_evaluation(tmp_path):
    data_dir = write_image_folder(tmp_path / "images", train_per_class=24, test_per_class=8)
    # 31 test and 15 validation images: odd, so neither splits evenly over 2 ranks or
    # into batches of 8; a padded or duplicated image would change the accuracy.
    (data_dir / "test" / "class0" / "class0_0000.png").unlink()
    (data_dir / "train" / "class3" / "class3_0000.png").unlink()
    out_dir = tmp_path / "runs"
    data_flags = ["--data.val_fraction", "0.15", "--data.batch_size", "8",
                  "--data.eval_batch_size", "8"]
    result = run_entry_point("experiments.cifar_mlp", [
        "--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(out_dir),
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        "--model.hidden_widths", "[16]", "--model.scheduler", "constant", *data_flags,
        "--model.flip_tta", "true",
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
    ], timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr

    run_dir = out_dir / "version_0"
    record = json.loads((run_dir / "run_info.json").read_text())["data"]
    assert (record["num_val"], record["num_test"]) == (15, 31)
    with open(run_dir / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    ddp_val, ddp_test = last_value(rows, "val/acc"), last_value(rows, "test/acc")
    ddp_test_tta = last_value(rows, "test/acc_flip_tta")

    checkpoint = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu")
    datamodule = CIFAR10DataModule(data_dir=str(data_dir), val_fraction=0.15, batch_size=8,
                                   eval_batch_size=8)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    single_val = trainer.validate(model, datamodule=datamodule, verbose=False)[0]["val/acc"]
    single = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    single_test, single_test_tta = single["test/acc"], single["test/acc_flip_tta"]

    assert 0 < ddp_test < 1 and 0 < ddp_val < 1  # else duplicates could not show
    assert ddp_val == pytest.approx(single_val, abs=1e-6)
    assert ddp_test == pytest.approx(single_test, abs=1e-6)
    assert ddp_test_tta == pytest.approx(single_test_tta, abs=1e-6)  # synced like test/acc
    # Whole images out of 31 and 15: counts over 32 or 16 images would not fit.
    assert abs(ddp_test * 31 - round(ddp_test * 31)) < 1e-4
    assert abs(ddp_test_tta * 31 - round(ddp_test_tta * 31)) < 1e-4
    assert abs(ddp_val * 15 - round(ddp_val * 15)) < 1e-4
