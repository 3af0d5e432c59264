"""Early stopping of poor sweep trials: a Lightning callback and the history it reads.

The sweep runner writes each finished trial's val/acc per epoch to a shared JSON file;
the callback, added to every trial by flag (`--trainer.callbacks+=...`), stops its trial
at the end of an epoch when its val/acc is below the median of the earlier trials' val/acc
at the same epoch (the median rule of Optuna's MedianPruner and Google Vizier).
"""

import json
import statistics
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from src.sweeps.run_metrics import MONITOR

PRUNED_FILE = "pruned.json"  # written in the trial's run directory when it is stopped


def read_history(path: Path) -> dict[str, dict[str, float]]:
    """trial id -> {epoch (as text, JSON keys) -> val/acc}."""
    return json.loads(path.read_text()) if path.is_file() else {}


def add_to_history(path: Path, trial_id: str, val_acc_by_epoch: dict[int, float]) -> None:
    history = read_history(path)
    history[trial_id] = {str(epoch): value for epoch, value in val_acc_by_epoch.items()}
    path.write_text(json.dumps(history, indent=1))


class MedianPruner(L.Callback):
    """Stop the run when val/acc falls below the median of earlier sweep trials.

    Args:
        history: JSON file of earlier trials' val/acc per epoch (written by the sweep).
        after_epochs: judge the run from the end of this epoch (1 = the first) on.
        min_trials: judge an epoch only when this many earlier trials reached it.
    """

    def __init__(self, history: str, after_epochs: int = 1, min_trials: int = 2):
        self.history = Path(history)
        self.after_epochs = after_epochs
        self.min_trials = min_trials

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or MONITOR not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch
        # Stopping after the last epoch would save nothing; such a trial is simply done.
        last_epoch = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if epoch + 1 < self.after_epochs or last_epoch:
            return
        earlier = [values[str(epoch)] for values in read_history(self.history).values()
                   if str(epoch) in values]
        if len(earlier) < self.min_trials:
            return
        value = float(trainer.callback_metrics[MONITOR])
        median = statistics.median(earlier)
        if value >= median:
            return
        # Every DDP rank sees the same synced val/acc and file, so all stop together.
        trainer.should_stop = True
        if trainer.is_global_zero:
            record = {"epoch": epoch, "val_acc": value, "median": median,
                      "earlier_trials": len(earlier)}
            Path(trainer.default_root_dir, PRUNED_FILE).write_text(json.dumps(record))
            rank_zero_info(f"Pruned: {MONITOR} {value:.4f} at epoch {epoch} is below the "
                           f"median {median:.4f} of {len(earlier)} earlier trials")
