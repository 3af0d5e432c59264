"""RunRecord: save what is needed to reproduce and trust a run, next to its logs.

Writes `<log_dir>/run_info.json` (seed, data statistics and sizes, package versions,
git commit, command line) and `<log_dir>/data_split.pt` (the training and validation
indices into the original training set), and logs the data statistics to every logger.
"""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import lightning as L
import torch

PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "wandb", "timm", "jsonargparse")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def git_commit() -> str:
    """The commit of the code that ran, marked "-dirty" when it had uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("-dirty" if dirty.strip() else "")


class RunRecord(L.Callback):
    """Record seed, data statistics, split indices, versions and commit with every run."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Under DDP `trainer.log_dir` is a broadcast that every rank must join, so it is
        # read on all ranks (a rank-zero-only hook here deadlocks); only rank 0 writes.
        log_dir = trainer.log_dir
        if trainer.is_global_zero:
            self._write_record(trainer, log_dir)

    def _write_record(self, trainer: L.Trainer, log_dir: str | None) -> None:
        datamodule = trainer.datamodule
        record = {
            "seed": os.environ.get("PL_GLOBAL_SEED"),
            "command": sys.argv,
            "git_commit": git_commit(),
            "packages": package_versions(),
            "data": datamodule.data_record() if hasattr(datamodule, "data_record") else None,
        }
        if record["data"] is not None:
            for logger in trainer.loggers:
                logger.log_hyperparams({"data_mean": record["data"]["mean"],
                                        "data_std": record["data"]["std"],
                                        "data_num_train": record["data"]["num_train"]})
        if log_dir is None:
            return
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "run_info.json"), "w") as file:
            json.dump(record, file, indent=2)
        if getattr(datamodule, "split_indices", None):
            torch.save(datamodule.split_indices, os.path.join(log_dir, "data_split.pt"))
