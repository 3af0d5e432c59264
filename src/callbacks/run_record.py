"""RunRecord: save what is needed to reproduce and trust a run, next to its logs.

Writes `<log_dir>/run_info.json` (seed, data statistics and sizes, package versions,
git commit, command line, start time), `<log_dir>/data_split.pt` (the training and
validation indices into the original training set) and, when the code had uncommitted
changes, `<log_dir>/git_diff.patch`; logs the data statistics to every logger. A resumed
run keeps the original record and appends its own command, commit and versions under
"resumes".
"""

import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import lightning as L
import torch

from src.core.project import PROJECT_ROOT

PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "wandb", "timm", "jsonargparse")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=10, check=True).stdout


def _in_project_checkout() -> bool:
    """True when PROJECT_ROOT is the top of a git checkout (not a package installed
    somewhere inside another repository, whose commit would say nothing about this code)."""
    try:
        return Path(_git("rev-parse", "--show-toplevel").strip()).resolve() == PROJECT_ROOT
    except (OSError, subprocess.SubprocessError):
        return False


def git_commit() -> str:
    """The commit of the code that ran, marked "-dirty" when it had uncommitted changes."""
    if not _in_project_checkout():
        return "unknown (not a git checkout)"
    try:
        commit = _git("rev-parse", "HEAD").strip()
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git failed)"
    return commit + ("-dirty" if dirty.strip() else "")


def git_diff() -> str:
    """Uncommitted changes to tracked files ("" when clean or not a checkout)."""
    if not _in_project_checkout():
        return ""
    try:
        return _git("diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return ""


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
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
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
        info_path = os.path.join(log_dir, "run_info.json")
        diff = git_diff()
        if trainer.ckpt_path and os.path.isfile(info_path):
            # Resumed: the original record stays; what ran this time is added to it.
            with open(info_path) as file:
                original = json.load(file)
            resume = {key: record[key] for key in
                      ("command", "started_at", "git_commit", "packages")}
            resume["checkpoint"] = str(trainer.ckpt_path)
            original.setdefault("resumes", []).append(resume)
            record = original
            diff_name = f"git_diff_resume{len(original['resumes'])}.patch"
        else:
            diff_name = "git_diff.patch"
        with open(info_path, "w") as file:
            json.dump(record, file, indent=2)
        if diff:
            with open(os.path.join(log_dir, diff_name), "w") as file:
                file.write(diff)
        if getattr(datamodule, "split_indices", None):
            torch.save(datamodule.split_indices, os.path.join(log_dir, "data_split.pt"))
