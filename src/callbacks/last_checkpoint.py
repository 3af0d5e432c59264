"""LastCheckpoint: keep `last.ckpt` the latest resumable state, and save it on SIGTERM/Ctrl-C.

`last.ckpt` is where `--resume true` continues from. It is written (atomically, through
the trainer's checkpoint plugin):
- every `every_n_steps` training steps, so a kill loses at most that much work;
- at the end of every epoch, after its validation;
- when SIGTERM (SLURM, spot instances, `kill`) or Ctrl-C arrives: at the end of the
  running step, after which training stops with `StopRequested` (the command line prints
  one line and exits with 128 + the signal number: 143 for SIGTERM, 130 for Ctrl-C).
  Both are answered at once (src/callbacks/signal_notice.py); a second Ctrl-C stops at
  once, without saving. Outside SLURM, Lightning's own SIGTERM handling only
  stops training (possibly in the middle of a validation pass) and saves nothing; this
  callback replaces it while training runs.

A step checkpoint is never written at a step followed by a validation pass (the last step
of an epoch, or a `val_check_interval` step): Lightning resumes such a checkpoint without
running that validation. The save moves to the next step, or to the epoch end.

It also records whether training had been stopped (early stopping), which Lightning
checkpoints forget: resuming a run that stopped early does not train it further.
"""

import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from src.callbacks.signal_notice import SignalNotice


def relocate_checkpoint_states(checkpoint: dict[str, Any], checkpoint_dir: str) -> None:
    """Point the ModelCheckpoint states of a loaded checkpoint at `checkpoint_dir`, where
    their files now are (the same names), when they were saved in another folder."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        old = state.get("dirpath") if key.startswith("ModelCheckpoint") else None
        if not old or old == checkpoint_dir:
            continue

        def moved(path: str) -> str:
            return str(Path(checkpoint_dir) / Path(path).name) if path else path

        state["dirpath"] = checkpoint_dir
        for name in ("best_model_path", "kth_best_model_path", "last_model_path"):
            state[name] = moved(state.get(name, ""))
        state["best_k_models"] = {moved(path): score
                                  for path, score in state.get("best_k_models", {}).items()}


class Interrupted(BaseException):
    """Ctrl-C that stops at once: outside training (setup, testing), or a second one.

    Raised by this callback and by the handler of src/cli/boundary.py. Deliberately not
    a KeyboardInterrupt: Lightning's fit and test catch that one, end the whole process
    with exit status 1 and leave Ctrl-C ignored afterwards. A Ctrl-C during setup would
    then be a failed run, and in an in-process sweep or study trial a finished one."""


class StopRequested(Exception):
    """Training was stopped by a signal after saving `last.ckpt`."""

    def __init__(self, signal_name: str, message: str):
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = 128 + signal.Signals[signal_name].value


HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class LastCheckpoint(Checkpoint):
    """Write `path` every `every_n_steps` steps (0: never mid-epoch), at each epoch end,
    and at the next step boundary after SIGTERM or Ctrl-C (then stop)."""

    def __init__(self, path: str | os.PathLike, every_n_steps: int = 0) -> None:
        self.path = str(path)
        self.every_n_steps = every_n_steps
        self.last_model_path = ""  # as ModelCheckpoint: the file, once written
        self.requested: str | None = None  # name of the signal received, if any
        self._save_due = False
        self._previous_handlers: dict[int, Any] = {}
        self._notice = SignalNotice(self.path)  # says at once what a signal will do
        self._training_stopped = False  # by early stopping, as saved in the checkpoint

    # -- signals --

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.requested is not None:
            raise Interrupted  # second Ctrl-C: the user does not want to wait
        # Only a flag here: the trainer may be in the middle of an optimizer step.
        self.requested = signal.Signals(signum).name

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for signum in HANDLED_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)
        if trainer.is_global_zero:
            self._notice.start()
        if trainer.received_sigterm:  # arrived while Lightning's handler was in place
            self.requested = "SIGTERM"
        if self._training_stopped:
            trainer.should_stop = True  # resumed a run that had stopped early: stay stopped

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        # Called before any callback state is loaded: a run directory that was moved still
        # names its old place in the best-checkpoint state, which Lightning would then drop
        # (best score, top-k) and keep pointing at files that are no longer there.
        relocate_checkpoint_states(checkpoint, str(Path(self.path).parent))

    def state_dict(self) -> dict[str, Any]:
        return {"training_stopped": self._training_stopped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._training_stopped = state_dict["training_stopped"]

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
        self._notice.stop()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._restore_handlers()

    def _stop_requested(self, trainer: L.Trainer) -> bool:
        # Under DDP a signal may reach one process only; all of them must stop together.
        stop = trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False)
        if stop:
            self.requested = self.requested or "SIGTERM"
        return stop

    # -- saving --

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run:
            return  # a smoke run leaves no checkpoints behind, as ModelCheckpoint does
        trainer.save_checkpoint(self.path, weights_only=False)
        self.last_model_path = self.path
        self._save_due = False

    @staticmethod
    def _validation_follows(trainer: L.Trainer, batch_idx: int) -> bool:
        if batch_idx + 1 >= trainer.num_training_batches:
            return True
        every = trainer.val_check_batch
        return isinstance(every, int) and (batch_idx + 1) % every == 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save_due = True
        stop = self._stop_requested(trainer)
        if not (stop or self._save_due) or self._validation_follows(trainer, batch_idx):
            return
        self._save(trainer)
        if stop:
            raise StopRequested(
                self.requested,
                f"{self.requested} received: stopped at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}) and saved {self.path}; continue with --resume true")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs after validation and after EarlyStopping and the best-model checkpoint
        # (Lightning calls checkpoint callbacks last), so their state is included.
        self._training_stopped = trainer.should_stop
        self._save(trainer)
        if self._stop_requested(trainer):
            # Stop between epochs; the command line reports it after `fit` returns.
            trainer.should_stop = True
