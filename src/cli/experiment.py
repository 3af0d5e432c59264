"""The command line shared by every entry point: LightningCLI, then fit, then test.

`python -m experiments.<recipe>` with no flags runs the recipe in
`experiments/configs/<recipe>.yaml`; every model/data/trainer setting is a dotted flag
(`--model.lr 0.05`), `--config file.yaml` layers a config on top and `--print_config`
prints the resolved config. After fitting, the best checkpoint (by validation accuracy)
is tested and the test accuracy printed in one line.

Every run writes into its own run directory (see src/runs/run_dir.py): `--run_dir`,
`--resume true` to continue a killed run from its last checkpoint, `--overwrite true`.
"""

import json
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from src.callbacks import (
    ExactResume,
    FiniteGuard,
    LastCheckpoint,
    RunRecord,
    StopRequested,
    TrainingDiverged,
)
from src.callbacks.overfit import find_overfit_check
from src.callbacks.weight_averaging import build_weight_averaging
from src.cli.tuning import add_tuning_arguments, tune
from src.cli.workflow_flags import add_workflow_arguments
from src.core.errors import ConfigError, UserInputError, lookup
from src.core.settings import same_value, unused_settings
from src.datamodules.base import ImageDataModule
from src.modules import ImageClassifier
from src.modules.classifier import SETTING_GROUPS
from src.runs.checkpoints import SafeCheckpointIO, check_checkpoint_fits, read_checkpoint
from src.runs.preflight import check_accelerator, check_output_dir
from src.runs.run_dir import LAST_CHECKPOINT, RunDirectory, check_resume_config, prepare_run_dir
from src.runs.tracking import WANDB_MODES, build_loggers, finish_wandb_run


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Save config.yaml in the run folder (Lightning's default) and log it to every logger."""

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        config = json.loads(self.parser.dump(self.config, skip_none=False, format="json"))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


class ExperimentCLI(LightningCLI):
    run: RunDirectory  # set in instantiate_trainer
    last_checkpoint: LastCheckpoint

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        add_workflow_arguments(parser)
        parser.set_defaults({
            "checkpoint.monitor": "val/acc",
            "checkpoint.mode": "max",
            # last.ckpt (the resume point) is written by LastCheckpoint, see below.
            "checkpoint.save_last": False,
            "checkpoint.filename": "best-epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
            # A resumed run rewrites best-epochNNN.ckpt instead of adding -v1 copies.
            "checkpoint.enable_version_counter": False,
            "early_stopping.monitor": "val/acc",
            "early_stopping.mode": "max",
            "early_stopping.patience": 10,
            "lr_monitor.logging_interval": "step",
        })
        parser.add_argument("--wandb.enabled", type=bool, default=False,
                            help="Log the run to Weights & Biases.")
        parser.add_argument("--wandb.project", type=str, default="image-classification",
                            help="W&B project.")
        parser.add_argument("--wandb.name", type=str | None, default=None,
                            help="W&B run name (default: W&B picks one).")
        parser.add_argument("--wandb.group", type=str | None, default=None,
                            help="W&B group of related runs (a study, a sweep), shown "
                                 "together in the W&B UI.")
        parser.add_argument("--wandb.mode", type=str, default="auto",
                            help="auto (online when a key and the server are there, else "
                                 "offline), online or offline.")
        # Weight averaging (src/callbacks/weight_averaging.py), off unless one is set.
        parser.add_argument("--ema.decay", type=float | None, default=None,
                            help="EMA of the weights with this decay, e.g. 0.999; "
                                 "validation, checkpoints and test use the average.")
        parser.add_argument("--swa.epoch_start", type=float | None, default=None,
                            help="SWA: average the weights at the end of each epoch from "
                                 "this fraction of max_epochs on, e.g. 0.75.")
        parser.add_argument("--swa.update_bn", type=bool, default=True,
                            help="SWA: recompute BatchNorm statistics of the averaged "
                                 "weights (one pass over the training data per average).")
        self._add_run_arguments(parser)
        add_tuning_arguments(parser)  # --tune.lr_find, --tune.batch_size_find, --tune.apply
        # The network's input and output sizes come from the data, never typed twice.
        for attribute in ("num_classes", "in_channels", "image_size"):
            parser.link_arguments(f"data.{attribute}", f"model.{attribute}",
                                  apply_on="instantiate")

    @staticmethod
    def _add_run_arguments(parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_dir", type=str | None, default=None,
                            help="Directory of this run (logs, config, checkpoints); "
                                 "default: a new <trainer.default_root_dir>/version_N.")
        parser.add_argument("--resume", type=bool, default=False,
                            help="Continue the run in --run_dir (default: the newest "
                                 "version_N) from checkpoints/last.ckpt; start it there "
                                 "if it has no checkpoint yet.")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="Delete the run already in --run_dir and start afresh.")
        parser.add_argument("--save_every_n_steps", type=int, default=500,
                            help="Also save checkpoints/last.ckpt every N training steps "
                                 "(0: only at the end of each epoch).")

    def before_instantiate_classes(self) -> None:
        # A recipe's options for the choices it made (onecycle_pct_start for its onecycle
        # schedule) are not the user's: switching the schedule with one flag drops them.
        # The same options given by the user for a choice not taken are refused by the
        # module (src/core/settings.py).
        model, recipe = self.config.model, self.parser.get_defaults().model
        for name, default in unused_settings(SETTING_GROUPS, vars(model)).items():
            if same_value(model[name], recipe[name]):
                model[name] = default

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        # Checked before the loggers and the Trainer exist, so a bad value writes nothing.
        best_checkpoint = self._get(self.config_init, "checkpoint")
        if self.config.run_dir is None:
            check_output_dir(trainer_config.get("default_root_dir") or ".",
                             "--trainer.default_root_dir")
        if best_checkpoint.dirpath is not None:
            check_output_dir(best_checkpoint.dirpath, "--checkpoint.dirpath")
        check_accelerator(trainer_config.get("accelerator", "auto"),
                          trainer_config.get("precision"))
        wandb = self._get(self.config_init, "wandb")
        lookup({mode: mode for mode in WANDB_MODES}, wandb.mode, "W&B mode")
        # Checked before any file is written: a wrong directory must not be touched.
        self.run = prepare_run_dir(
            run_dir=self.config.run_dir, resume=self.config.resume,
            overwrite=self.config.overwrite,
            default_root=trainer_config.get("default_root_dir") or ".",
            checkpoint_dir=best_checkpoint.dirpath, wandb_enabled=wandb.enabled)
        self.config.run_dir = str(self.run.path)  # config.yaml records where the run lives
        if self.run.resume_from is not None:
            check_resume_config(self.run.path, json.loads(
                self.parser.dump(self.config, skip_none=False, format="json")))
        kwargs["default_root_dir"] = str(self.run.path)
        if trainer_config.get("logger") in (None, True):  # not set by the user: ours
            kwargs["logger"] = build_loggers(
                run_dir=self.run.path, wandb_enabled=wandb.enabled,
                wandb_project=wandb.project, wandb_name=wandb.name, wandb_group=wandb.group,
                wandb_mode=wandb.mode, wandb_id=self.run.wandb_id)
        if trainer_config.get("precision") is None:
            kwargs["precision"] = default_precision(trainer_config.get("accelerator", "auto"))
        kwargs["plugins"] = [*(trainer_config.get("plugins") or []), SafeCheckpointIO()]
        best_checkpoint.dirpath = str(self.run.checkpoint_dir)
        self.last_checkpoint = LastCheckpoint(self.run.checkpoint_dir / LAST_CHECKPOINT,
                                              every_n_steps=self.config.save_every_n_steps)
        callbacks = list(trainer_config.get("callbacks") or [])
        ema, swa = self._get(self.config_init, "ema"), self._get(self.config_init, "swa")
        averaging = build_weight_averaging(ema_decay=ema.decay, swa_epoch_start=swa.epoch_start,
                                           swa_update_bn=swa.update_bn)
        kwargs["callbacks"] = [*callbacks, *averaging, RunRecord(), ExactResume(), FiniteGuard(),
                               self.last_checkpoint]
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, ModuleNotFoundError) as error:
            # Trainer(...) rejects devices, strategies and plugins it cannot use here.
            self.run.discard_if_unused()
            raise ConfigError(f"--trainer settings cannot run here: {error}") from None
        # Last of all: the best-by-val/acc checkpoint stays `trainer.checkpoint_callback`,
        # and at each epoch end last.ckpt includes the state of every other callback.
        trainer.callbacks.remove(self.last_checkpoint)
        trainer.callbacks.append(self.last_checkpoint)
        return trainer


def default_precision(accelerator: Any) -> str:
    """bf16 mixed precision on GPUs that support it, full precision elsewhere."""
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    native_bf16 = on_gpu and torch.cuda.is_bf16_supported(including_emulation=False)
    return "bf16-mixed" if native_bf16 else "32-true"


def fit_and_test(cli: ExperimentCLI) -> dict[str, float]:
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    overfit = find_overfit_check(trainer)
    if overfit is not None and overfit.active:  # --overfit.mode: a sanity check, no test
        return overfit.run(trainer, model, datamodule)
    if not datamodule.has_validation:
        # No validation set: nothing to select on, so keep the final weights.
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, EarlyStopping)]
        for callback in trainer.checkpoint_callbacks:
            callback.monitor = None
    resume_from = cli.run.resume_from
    if resume_from is not None:  # one clear line for a damaged or foreign file
        check_checkpoint_fits(read_checkpoint(resume_from), model, resume_from)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except UserInputError:
        cli.run.discard_if_unused()  # e.g. a corrupt image: leave no empty run folder behind
        raise
    stopped_by = cli.last_checkpoint.requested
    if stopped_by:  # the signal came at an epoch end: training stopped there
        raise StopRequested(stopped_by, f"{stopped_by} received: stopped after epoch "
                                        f"{trainer.current_epoch - 1} and saved "
                                        f"{cli.last_checkpoint.path}; testing skipped "
                                        f"(continue with --resume true)")
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    use_best = datamodule.has_validation and bool(best)
    results = trainer.test(model, datamodule=datamodule, ckpt_path=best if use_best else None,
                           verbose=False, weights_only=True)[0]
    if use_best:
        which = f"best checkpoint {best} (val/acc {float(checkpoint.best_model_score):.4f})"
    elif datamodule.has_validation:  # e.g. fast_dev_run, or checkpointing switched off
        which = "final weights (no checkpoint was saved)"
    else:
        which = "final weights (no validation set to select a checkpoint)"
    if trainer.is_global_zero:
        print(f"Test accuracy: {100 * results['test/acc']:.2f}% "
              f"(test loss {results['test/loss']:.4f}; {which})", flush=True)
        if "test/acc_flip_tta" in results:  # --model.flip_tta true
            print(f"Test accuracy with flip TTA: {100 * results['test/acc_flip_tta']:.2f}% "
                  f"(mean softmax of each test image and its mirror image)", flush=True)
    return results


def run_experiment(datamodule_class: type[ImageDataModule], recipe: Path,
                   args: list[str] | None = None) -> dict[str, float] | None:
    """Parse flags on top of the recipe file `recipe`, then fit and test.

    Problems with the user's input end the program with one line on stderr and exit
    status 2, before anything is written. A diverged run (NaN/inf loss) ends with one line
    and status 1; a run stopped by SIGTERM or Ctrl-C with one line and 128 + the signal
    number (143, 130) after saving checkpoints/last.ckpt.
    """
    try:
        cli = ExperimentCLI(
            ImageClassifier, datamodule_class, run=False, args=args,
            save_config_callback=LoggerSaveConfigCallback,
            # Optimizers and schedules come from --model.optimizer / --model.scheduler only;
            # LightningCLI's own --optimizer would silently replace them.
            auto_configure_optimizers=False,
            # The run directory was checked (see run_dir.py); a resumed run rewrites it.
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"default_config_files": [str(recipe)]},
        )
        try:
            # Finders only (tune returns False): values printed, nothing trained.
            results = fit_and_test(cli) if tune(cli) else None
        except BaseException:
            finish_wandb_run(failed=True)
            raise
        finish_wandb_run()  # after the finders alone too: they log through the same run
        return results
    except (UserInputError, MisconfigurationException) as error:
        # Library messages may span lines; the user gets exactly one.
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except StopRequested as stop:
        print(f"stopped: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None
    except SIGTERMException:
        # Lightning's own handler: the signal came outside the training steps (sanity
        # check, testing), so no training progress is lost beyond the last checkpoint.
        print("stopped: SIGTERM received outside training; the last checkpoint is kept "
              "(continue with --resume true)", file=sys.stderr)
        raise SystemExit(143) from None
