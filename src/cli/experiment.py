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
import math
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from src.callbacks import (
    ExactResume,
    FiniteGuard,
    LastCheckpoint,
    RunRecord,
    StopRequested,
)
from src.callbacks.overfit import find_overfit_check
from src.callbacks.progress import RunProgressBar
from src.callbacks.run_estimate import RunEstimate
from src.callbacks.weight_averaging import build_weight_averaging
from src.cli.boundary import option_strings, parse_error, run_command
from src.cli.checkpoint_commands import CHECKPOINT_COMMANDS, run_checkpoint_command
from src.cli.tuning import add_tuning_arguments, tune
from src.cli.workflow_flags import add_workflow_arguments
from src.core.errors import ConfigError, check_range, lookup
from src.core.recipes import Recipes
from src.core.settings import same_value, unused_settings
from src.datamodules.base import ImageDataModule
from src.modules import ImageClassifier
from src.modules.classifier import SETTING_GROUPS
from src.runs.checkpoints import SafeCheckpointIO, check_checkpoint_fits, read_checkpoint
from src.runs.preflight import check_accelerator, check_output_dir, default_precision
from src.runs.run_dir import (
    LAST_CHECKPOINT,
    RunDirectory,
    check_resume_config,
    prepare_run_dir,
    resume_where_config_lies,
)
from src.runs.tracking import WANDB_MODES, build_loggers, finish_wandb_run

SUBCOMMANDS = ("fit", *CHECKPOINT_COMMANDS)
# The flags are always handed over as a list (a subcommand is taken off the front first);
# Lightning warns about that even when they are the command line's own.
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")


def check_finite(config: Any, prefix: str = "") -> None:
    """NaN or inf in any numeric setting (flags or config files) ends in one line; range
    checks cannot catch them (every comparison with NaN is false)."""
    items = vars(config).items() if hasattr(config, "__dict__") else ()
    for key, value in items:
        name = f"{prefix}{key}"
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"--{name}={item} is not a finite number; give a real value")
            if hasattr(item, "__dict__") and not callable(item):
                check_finite(item, f"{name}.")


def check_run_settings(config: Any) -> None:
    """Settings that would end in a library traceback, or in a run that trains nothing and
    still prints an accuracy, are refused before anything starts."""
    check_finite(config)
    seed = config.seed_everything
    if not isinstance(seed, bool) and isinstance(seed, int):
        check_range("seed_everything", seed, 0, 2**32 - 1)
    trainer = config.trainer
    if trainer.max_epochs == 0 or trainer.max_steps == 0 or trainer.limit_train_batches == 0:
        raise ConfigError("nothing to train: --trainer.max_epochs, --trainer.max_steps or "
                          "--trainer.limit_train_batches is 0; give at least one epoch or step")
    check_range("trainer.accumulate_grad_batches", trainer.accumulate_grad_batches, 1)


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Save config.yaml in the run folder (Lightning's default) and log it to every logger."""

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        config = json.loads(self.parser.dump(self.config, skip_none=False, format="json"))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


class ExperimentCLI(LightningCLI):
    run: RunDirectory  # set in instantiate_trainer
    last_checkpoint: LastCheckpoint

    def __init__(self, *args: Any, quicker: list[str] | None = None, **kwargs: Any):
        self.quicker = quicker or []  # commands to suggest when the run is long on a CPU
        super().__init__(*args, **kwargs)

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
            # A run that never validates (limit_val_batches 0, max_steps inside the first
            # epoch) stops on its own length and tests its final weights, as it says.
            "early_stopping.strict": False,
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
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="Start from this checkpoint's state (weights, optimizer, "
                                 "schedule, epoch) in a new run directory, as Lightning's "
                                 "fit --ckpt_path does; to continue a run in its own folder "
                                 "use --resume true.")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self.given_flags = [arg.split("=", 1)[0] for arg in args or [] if arg.startswith("--")]
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:  # exit_on_error=False: one line instead of the usage
            raise parse_error(str(error), option_strings(parser), parser.prog) from None
        check_run_settings(self.config)

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
        if self.config.resume and "--run_dir" not in self.given_flags:
            self.config.run_dir = resume_where_config_lies(self.config.get("config"),
                                                           self.config.run_dir)
        # Checked before any file is written: a wrong directory must not be touched.
        self.run = prepare_run_dir(
            run_dir=self.config.run_dir, resume=self.config.resume,
            overwrite=self.config.overwrite,
            default_root=trainer_config.get("default_root_dir") or ".",
            checkpoint_dir=best_checkpoint.dirpath, wandb_enabled=wandb.enabled)
        try:
            trainer = self._trainer_in_run_dir(trainer_config, best_checkpoint, wandb, kwargs)
        except BaseException:
            # Nothing of this run may stay behind (an empty folder, a held lock).
            self.run.discard_if_unused()
            raise
        # Last of all: the best-by-val/acc checkpoint stays `trainer.checkpoint_callback`,
        # and at each epoch end last.ckpt includes the state of every other callback.
        trainer.callbacks.remove(self.last_checkpoint)
        trainer.callbacks.append(self.last_checkpoint)
        return trainer

    def _trainer_in_run_dir(self, trainer_config: dict[str, Any], best_checkpoint: Any,
                            wandb: Any, kwargs: dict[str, Any]) -> Trainer:
        """The Trainer, once the run directory is chosen and locked."""
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
        if trainer_config.get("enable_progress_bar") is not False:
            callbacks.append(RunProgressBar())  # "Epoch 4/30", and a true ETA after a resume
        kwargs["callbacks"] = [*callbacks, *averaging, RunRecord(), ExactResume(), FiniteGuard(),
                               RunEstimate(self.quicker), self.last_checkpoint]
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, ModuleNotFoundError) as error:
            # Trainer(...) rejects devices, strategies and plugins it cannot use here.
            raise ConfigError(f"--trainer settings cannot run here: {error}") from None


def fit_and_test(cli: ExperimentCLI, test: bool = True) -> dict[str, float]:
    """Fit; then (unless `test` is False) test the best-by-validation checkpoint, or the
    final weights when there is nothing to select on, and print one line saying which."""
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    overfit = find_overfit_check(trainer)
    if overfit is not None and overfit.active:  # --overfit.mode: a sanity check, no test
        return overfit.run(trainer, model, datamodule)
    if not datamodule.has_validation:
        # No validation set: nothing to select on, so keep the final weights.
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, EarlyStopping)]
        for callback in trainer.checkpoint_callbacks:
            callback.monitor = None
    start_from = cli.run.resume_from or cli.config.ckpt_path
    if cli.run.resume_from is not None and cli.config.ckpt_path is not None:
        raise ConfigError("--resume true continues this run from its own last.ckpt and "
                          "--ckpt_path starts a new run from another checkpoint: give one")
    if start_from is not None:  # one clear line for a damaged or foreign file
        check_checkpoint_fits(read_checkpoint(start_from), model, start_from)
    trainer.fit(model, datamodule=datamodule, ckpt_path=start_from, weights_only=True)
    stopped_by = cli.last_checkpoint.requested
    if stopped_by:  # the signal came at an epoch end: training stopped there
        raise StopRequested(stopped_by, f"{stopped_by} received: stopped after epoch "
                                        f"{trainer.current_epoch - 1} and saved "
                                        f"{cli.last_checkpoint.path}; testing skipped "
                                        f"(continue with --resume true)")
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.monitor else ""
    if best:
        which = f"best checkpoint {best} (val/acc {float(checkpoint.best_model_score):.4f})"
    elif not datamodule.has_validation:
        which = "final weights (no validation set to select a checkpoint)"
    else:  # too short to validate (max_steps, limit_val_batches 0), fast_dev_run, ...
        which = "final weights (no checkpoint was saved, so there was none to select)"
    if not test:
        if trainer.is_global_zero:
            print(f"Fitted; to test: {which}", flush=True)
        return {key: float(value) for key, value in trainer.callback_metrics.items()}
    results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None,
                           verbose=False, weights_only=True)[0]
    if trainer.is_global_zero:
        print(f"Test accuracy: {100 * results['test/acc']:.2f}% "
              f"(test loss {results['test/loss']:.4f}; {which})", flush=True)
        if "test/acc_flip_tta" in results:  # --model.flip_tta true
            print(f"Test accuracy with flip TTA: {100 * results['test/acc_flip_tta']:.2f}% "
                  f"(mean softmax of each test image and its mirror image)", flush=True)
    return results


def quicker_commands(recipes: Recipes, name: str, program: str) -> list[str]:
    """What to run instead of a recipe that is long on a CPU: its CPU recipe if it has one,
    and a subset of the data."""
    commands = []
    cpu_recipe = recipes.config_dir / f"{name}_cpu.yaml"
    if cpu_recipe.is_file():
        shown = cpu_recipe.relative_to(recipes.config_dir.parents[1])  # from the project root
        commands.append(f"{program} --config {shown} (the CPU recipe, see its header)")
    commands.append("add --data.subset_per_class 500 (500 training images per class) and "
                    "fewer --trainer.max_epochs")
    return commands


def run_experiment(datamodule_class: type[ImageDataModule], recipes: Recipes, name: str,
                   args: list[str] | None = None) -> dict[str, float] | Path | None:
    """`python -m <app>.<name> [fit|validate|test|predict] [flags]`, on the recipe `name`.

    Without a subcommand: fit, then test the best checkpoint (one line). `fit` only fits;
    `validate`, `test` and `predict` run a checkpoint (`--ckpt_path`, see
    checkpoint_commands.py). Every way the command can end is one line and an exit status
    (src/cli/boundary.py); bad input writes nothing.
    """
    argv = list(sys.argv[1:] if args is None else args)
    command = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else None
    program = f"python -m {recipes.package}.{name}"
    if command in CHECKPOINT_COMMANDS:
        return run_command(lambda: run_checkpoint_command(command, datamodule_class, argv,
                                                          program))
    state: dict[str, ExperimentCLI] = {}

    def work() -> dict[str, float] | None:
        state["cli"] = cli = ExperimentCLI(
            ImageClassifier, datamodule_class, run=False, args=argv,
            save_config_callback=LoggerSaveConfigCallback,
            # Optimizers and schedules come from --model.optimizer / --model.scheduler only;
            # LightningCLI's own --optimizer would silently replace them.
            auto_configure_optimizers=False,
            # The run directory was checked (see run_dir.py); a resumed run rewrites it.
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"default_config_files": [str(recipes.config(name))],
                           "exit_on_error": False, "prog": program},
            quicker=quicker_commands(recipes, name, program))
        try:
            # Finders only (tune returns False): values printed, nothing trained.
            results = fit_and_test(cli, test=command is None) if tune(cli) else None
        except BaseException:
            finish_wandb_run(failed=True)
            raise
        finally:
            cli.run.release()  # the run directory's lock, however the run ended
        finish_wandb_run()  # after the finders alone too: they log through the same run
        return results

    def cleanup() -> None:  # a late error, or Ctrl-C: leave no run folder without checkpoints
        run = getattr(state.get("cli"), "run", None)
        if run is not None:
            run.discard_if_unused()

    return run_command(work, cleanup)


class _BuildOnlyCLI(ExperimentCLI):
    """Parses and builds like the entry points, then stops short of the Trainer: no run
    folder, logger or checkpoint is created."""

    def instantiate_trainer(self, **kwargs: Any) -> None:
        return None


def build_recipe(datamodule_class: type[ImageDataModule], recipe: Path,
                 args: list[str]) -> tuple[ImageClassifier, ImageDataModule, Any]:
    """The model, the datamodule and every other parsed setting (a jsonargparse Namespace:
    `.trainer` holds the Trainer's keyword arguments, `.ema`, `.swa`, ...) that
    `run_experiment(datamodule_class, recipe, args)` would fit, parsed by the same parser
    (the same flags, `--config` layering and checks; `--seed_everything` seeds the model's
    initialization), for tools that train them their own way (the benchmark). Nothing is
    fitted or written."""
    cli = _BuildOnlyCLI(
        ImageClassifier, datamodule_class, run=False, args=args,
        auto_configure_optimizers=False,  # as in run_experiment
        parser_kwargs={"default_config_files": [str(recipe)], "exit_on_error": False})
    return cli.model, cli.datamodule, cli.config
