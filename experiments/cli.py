"""The command line shared by every entry point: LightningCLI, then fit, then test.

`python -m experiments.<recipe>` with no flags runs the recipe in
`experiments/configs/<recipe>.yaml`; every model/data/trainer setting is a dotted flag
(`--model.lr 0.05`), `--config file.yaml` layers a config on top and `--print_config`
prints the resolved config. After fitting, the best checkpoint (by validation accuracy)
is tested and the test accuracy printed in one line.
"""

import json
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from experiments.tuning import add_tuning_arguments, tune
from src.callbacks import RunRecord
from src.datamodules.base import ImageDataModule
from src.errors import UserInputError
from src.modules import ImageClassifier
from src.tracking import build_loggers

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Save config.yaml in the run folder (Lightning's default) and log it to every logger."""

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        config = json.loads(self.parser.dump(self.config, skip_none=False, format="json"))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


class ExperimentCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({
            "checkpoint.monitor": "val/acc",
            "checkpoint.mode": "max",
            "checkpoint.save_last": True,
            "checkpoint.filename": "best-epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
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
        parser.add_argument("--wandb.mode", type=str, default="auto",
                            help="auto (online when a key and the server are there, else "
                                 "offline), online or offline.")
        add_tuning_arguments(parser)  # --tune.lr_find, --tune.batch_size_find, --tune.apply
        # The network's input and output sizes come from the data, never typed twice.
        for attribute in ("num_classes", "in_channels", "image_size"):
            parser.link_arguments(f"data.{attribute}", f"model.{attribute}",
                                  apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):  # not set by the user: ours
            wandb = self._get(self.config_init, "wandb")
            kwargs["logger"] = build_loggers(
                save_dir=trainer_config.get("default_root_dir") or ".",
                wandb_enabled=wandb.enabled, wandb_project=wandb.project,
                wandb_name=wandb.name, wandb_mode=wandb.mode)
        if trainer_config.get("precision") is None:
            kwargs["precision"] = default_precision(trainer_config.get("accelerator", "auto"))
        callbacks = list(trainer_config.get("callbacks") or [])
        kwargs["callbacks"] = [*callbacks, RunRecord()]
        return super().instantiate_trainer(**kwargs)


def default_precision(accelerator: Any) -> str:
    """bf16 mixed precision on GPUs that support it, full precision elsewhere."""
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"


def fit_and_test(cli: ExperimentCLI) -> dict[str, float]:
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    if not datamodule.has_validation:
        # No validation set: nothing to select on, so keep the final weights.
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, EarlyStopping)]
        for callback in trainer.checkpoint_callbacks:
            callback.monitor = None
    trainer.fit(model, datamodule=datamodule)
    if trainer.interrupted:
        raise SystemExit(130)
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    use_best = datamodule.has_validation and bool(best)
    results = trainer.test(model, datamodule=datamodule, ckpt_path=best if use_best else None,
                           verbose=False)[0]
    if use_best:
        which = f"best checkpoint {best} (val/acc {float(checkpoint.best_model_score):.4f})"
    else:
        which = "final weights (no validation set to select a checkpoint)"
    if trainer.is_global_zero:
        print(f"Test accuracy: {100 * results['test/acc']:.2f}% "
              f"(test loss {results['test/loss']:.4f}; {which})", flush=True)
    return results


def run_experiment(datamodule_class: type[ImageDataModule], config_name: str,
                   args: list[str] | None = None) -> dict[str, float] | None:
    """Parse flags on top of `configs/<config_name>`, then fit and test.

    Problems with the user's input end the program with one line on stderr and exit
    status 2, before anything is written.
    """
    try:
        cli = ExperimentCLI(
            ImageClassifier, datamodule_class, run=False, args=args,
            save_config_callback=LoggerSaveConfigCallback,
            parser_kwargs={"default_config_files": [str(CONFIG_DIR / config_name)]},
        )
        if not tune(cli):
            return None  # finders only: values printed, nothing trained
        return fit_and_test(cli)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
