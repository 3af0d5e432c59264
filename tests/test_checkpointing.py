"""The pieces resuming relies on: atomic, weights-only checkpoint files, the loader's
position, the RNG states and the appending CSV log."""

import csv
import io
import random

import numpy as np
import pytest
import torch

from src.callbacks.exact_resume import collect_rng_states, restore_rng_states
from src.core.errors import ConfigError
from src.datamodules.tensor_loader import TensorBatchLoader
from src.runs.checkpoints import CheckpointError, SafeCheckpointIO, read_checkpoint
from src.runs.tracking import ResumableCSVLogger


class NotPlainData:
    """A class weights-only loading refuses to rebuild."""


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    plugin = SafeCheckpointIO()
    plugin.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    def crash_midway(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        plugin.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(plugin.load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


@pytest.mark.parametrize("content, reason", [
    (b"this is a text file", "is not a readable checkpoint"),
    (None, "it holds pickled Python objects"),
    ({"weights": torch.ones(1)}, "is not a Lightning checkpoint"),
])
def test_read_checkpoint_fails_in_one_line(tmp_path, content, reason):
    path = tmp_path / "file.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save({"state_dict": {}, "extra": NotPlainData()} if content is None else content,
                   path)
    with pytest.raises(CheckpointError, match=reason) as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")


def make_loader(epoch: int = 3) -> TensorBatchLoader:
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1)
    return TensorBatchLoader(images, torch.arange(50), batch_size=8, shuffle=True, seed=1,
                             epoch_fn=lambda: epoch)


def test_loader_resumes_mid_epoch_at_the_next_unseen_batch():
    loader = make_loader()
    whole_epoch = [labels for _, labels in loader]
    iterator = iter(loader)
    seen = [next(iterator)[1] for _ in range(3)]
    state = loader.state_dict()
    assert state == {"epoch": 3, "batches_yielded": 3, "batches_per_epoch": 7, "world_size": 1}

    resumed = make_loader()
    resumed.load_state_dict(state)
    rest = [labels for _, labels in resumed]
    assert all(torch.equal(a, b) for a, b in zip(seen + rest, whole_epoch, strict=True))
    assert len([labels for _, labels in resumed]) == 7  # the next pass is a whole epoch


def test_loader_position_from_another_epoch_is_ignored_and_other_sizes_refused():
    resumed = make_loader(epoch=4)
    resumed.load_state_dict({"epoch": 3, "batches_yielded": 7, "batches_per_epoch": 7})
    assert len(list(resumed)) == 7
    with pytest.raises(ConfigError, match="7 training batches per epoch, this run has 4"):
        TensorBatchLoader(torch.zeros(50, 1, 1, 1), torch.zeros(50), batch_size=13,
                          shuffle=True).load_state_dict(
            {"epoch": 0, "batches_yielded": 1, "batches_per_epoch": 7})


def test_rng_states_round_trip_through_a_weights_only_checkpoint():
    buffer = io.BytesIO()
    torch.save(collect_rng_states(), buffer)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    buffer.seek(0)
    restore_rng_states(torch.load(buffer, weights_only=True))
    actual = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(actual[0], expected[0])
    assert np.array_equal(actual[1], expected[1]) and actual[2] == expected[2]


def read_csv(path) -> list[dict[str, str]]:
    with open(path) as file:
        return list(csv.DictReader(file))


def test_csv_log_is_appended_and_steps_logged_again_replace_the_old_values(tmp_path):
    first = ResumableCSVLogger(save_dir=tmp_path, name="", version="run")
    for step in range(4):
        first.log_metrics({"loss": float(step)}, step=step)
    first.log_metrics({"val/acc": 0.5}, step=1)
    first.save()
    # Resumed from a checkpoint at step 2: steps 2 and 3 are trained and logged again.
    second = ResumableCSVLogger(save_dir=tmp_path, name="", version="run")
    second.log_metrics({"loss": 20.0}, step=2)
    second.log_metrics({"loss": 30.0, "lr": 0.1}, step=3)
    second.save()
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [(row["step"], row["loss"], row["val/acc"], row["lr"]) for row in rows] == [
        ("0", "0.0", "", ""), ("1", "1.0", "", ""), ("1", "", "0.5", ""),
        ("2", "20.0", "", ""), ("3", "30.0", "", "0.1")]


def test_a_key_new_to_the_log_at_a_step_logged_again_is_added_not_an_error(tmp_path):
    # The killed run flushed epoch 0's validation row (step 5) but was killed before its
    # training epoch row, so the old log has no train/acc column. The resumed run logs
    # train/acc at step 5 first and validation afterwards, in two saves.
    first = ResumableCSVLogger(save_dir=tmp_path, name="", version="run")
    first.log_metrics({"loss": 4.0}, step=4)
    first.log_metrics({"val/acc": 0.5}, step=5)
    first.save()
    second = ResumableCSVLogger(save_dir=tmp_path, name="", version="run")
    second.log_metrics({"loss": 40.0}, step=4)
    second.log_metrics({"train/acc": 0.7}, step=5)
    second.save()
    second.log_metrics({"val/acc": 0.6}, step=5)
    second.save()
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [(row["step"], row["loss"], row["train/acc"], row["val/acc"]) for row in rows] == [
        ("4", "40.0", "", ""), ("5", "", "0.7", ""), ("5", "", "", "0.6")]


def test_a_last_line_cut_short_by_a_kill_is_dropped_when_the_run_resumes(tmp_path):
    first = ResumableCSVLogger(save_dir=tmp_path, name="", version="run")
    for step in range(3):
        first.log_metrics({"loss": float(step), "lr": 0.1}, step=step)
    first.save()
    path = tmp_path / "run" / "metrics.csv"
    path.write_text(path.read_text() + "7.0,")  # step 3's line, cut before its step and lr
    second = ResumableCSVLogger(save_dir=tmp_path, name="", version="run")
    second.log_metrics({"loss": 30.0, "lr": 0.1}, step=3)
    second.save()
    assert [(row["step"], row["loss"]) for row in read_csv(path)] == [
        ("0", "0.0"), ("1", "1.0"), ("2", "2.0"), ("3", "30.0")]


def test_a_log_cut_short_in_its_header_is_started_again(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("loss,lr,st")  # killed while rewriting it
    second = ResumableCSVLogger(save_dir=tmp_path, name="", version="run")
    second.log_metrics({"loss": 30.0}, step=3)
    second.save()
    assert [(row["step"], row["loss"]) for row in read_csv(tmp_path / "run" / "metrics.csv")] \
        == [("3", "30.0")]


def test_a_position_saved_by_another_number_of_processes_continues_at_the_same_fraction():
    # Saved halfway through epoch 0 by 2 processes (6 batches each); resumed on 1 process,
    # whose epoch has 12 batches: it goes on at batch 6, with a warning that says why.
    loader = TensorBatchLoader(torch.zeros(60, 1, 1, 1), torch.zeros(60), batch_size=5,
                               shuffle=True)
    state = {"epoch": 0, "batches_yielded": 3, "batches_per_epoch": 6, "world_size": 2}
    with pytest.warns(UserWarning, match="resumed on 1 process.* instead of 2: the interrupted "
                                         "epoch continues at batch 6 of 12"):
        loader.load_state_dict(state)
    assert len(list(loader)) == 12 - 6
