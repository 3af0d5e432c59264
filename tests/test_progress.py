"""The progress bar: the run's length, and after a resume a rate of the batches trained now."""

from types import SimpleNamespace

from src.callbacks.progress import RunProgressBar


def bar_after(first_batch: int) -> RunProgressBar:
    trainer = SimpleNamespace(max_epochs=30, current_epoch=3, num_training_batches=88,
                              sanity_checking=False)
    bar = RunProgressBar()
    bar._trainer = trainer
    bar.get_metrics = lambda trainer, module: {}  # no logged values in this fake run
    bar.train_progress_bar = bar.init_train_tqdm()
    bar.on_train_epoch_start(trainer)
    bar.on_train_batch_end(trainer, None, None, None, first_batch)
    return bar


def test_the_bar_names_the_epoch_of_the_run():
    assert bar_after(0).train_progress_bar.desc.startswith("Epoch 4/30")


def test_an_epoch_resumed_at_batch_40_counts_its_rate_from_there():
    tqdm_bar = bar_after(40).train_progress_bar
    assert (tqdm_bar.initial, tqdm_bar.n, tqdm_bar.total) == (40, 41, 88)
    assert bar_after(0).train_progress_bar.initial == 0  # a normal epoch starts at 0
