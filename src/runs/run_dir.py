"""The run directory: where one run writes everything, and whether it may write there.

    <run_dir>/
        config.yaml        the resolved configuration (`--config` it to rerun or resume)
        run_info.json      seed, data statistics, package versions, git commit, resumes
        data_split.pt      training and validation indices
        git_diff.patch     uncommitted changes of the code that ran, if any
        metrics.csv        CSV log (appended to on resume), hparams.yaml
        checkpoints/       best-epochNNN.ckpt (by val/acc) and last.ckpt (resume point)
        wandb/, wandb_run_id   with --wandb.enabled true

By default each run gets a new `<trainer.default_root_dir>/version_N`. `--run_dir PATH`
names it. A directory that already holds files is refused unless `--resume true`
(continue the run in it from `checkpoints/last.ckpt`; without `--run_dir`, the newest
`version_N`) or `--overwrite true` (delete that run's files first). Resuming a directory
with no checkpoint yet starts the run there from the beginning, so a job script can
always pass `--resume true`.
"""

import os
import re
import secrets
import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from src.core.errors import ConfigError
from src.runs.lock import LOCK_FILE, acquire_lock, release_lock

LAST_CHECKPOINT = "last.ckpt"
WANDB_ID_FILE = "wandb_run_id"
# Everything a run writes in its directory; --overwrite deletes these and nothing else.
RUN_FILES = ("config.yaml", "run_info.json", "data_split.pt", "metrics.csv", "hparams.yaml",
             "checkpoints", "wandb", WANDB_ID_FILE)
RUN_FILE_PATTERNS = ("git_diff*.patch",)
# Processes started by Lightning for DDP run this program again; they must write to the
# directory the first process chose, not pick the next free version_N themselves.
RUN_DIR_ENV = "IMAGE_CLASSIFICATION_RUN_DIR"
# Settings a resumed run may change: where and on what it runs, how it reports progress.
MAY_CHANGE_ON_RESUME = (
    "resume", "overwrite", "run_dir", "save_every_n_steps", "trainer.default_root_dir",
    "trainer.accelerator", "trainer.strategy", "trainer.devices", "trainer.num_nodes",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.max_time",
    "data.data_dir", "data.cache_dir", "data.device_resident", "data.download", "wandb.mode",
)


@dataclass
class RunDirectory:
    path: Path
    checkpoint_dir: Path
    resume_from: Path | None  # the checkpoint to continue from, if any
    wandb_id: str | None
    # Folders this command created, deepest first (the run directory, missing parents).
    created: tuple[Path, ...] = ()
    lock: Path | None = None  # held by this process (rank 0) while the run lasts

    def release(self) -> None:
        if self.lock is not None:
            release_lock(self.lock)

    def discard_if_unused(self) -> None:
        """Remove the run directory this command created, when the run failed before it
        saved any checkpoint (bad input found late: a corrupt image, a schedule that does
        not fit), so that it leaves nothing behind. A directory that existed before, or
        that holds a checkpoint, is kept as it is; only the lock is released."""
        self.release()
        if not self.created or self.created[0] != self.path:
            return  # an existing run directory: leave it as it was
        if any(self.checkpoint_dir.glob("*.ckpt")):
            return  # training saved something: keep it
        shutil.rmtree(self.path, ignore_errors=True)
        for directory in self.created[1:]:
            try:
                directory.rmdir()
            except OSError:  # not empty (or gone): stop, keep everything above it
                return


def _versions(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return sorted(int(match.group(1)) for entry in root.iterdir()
                  if entry.is_dir() and (match := re.fullmatch(r"version_(\d+)", entry.name)))


def _holds_files(path: Path) -> bool:
    """Whether `path` holds anything but a lock (a stale one is not a run)."""
    return path.is_dir() and any(entry.name != LOCK_FILE for entry in path.iterdir())


def _remove_temporary_checkpoints(checkpoints: Path) -> None:
    """A kill while a checkpoint was written leaves its temporary file (see
    SafeCheckpointIO); the run holding the lock now owns the folder, so they go."""
    for leftover in checkpoints.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def _remove_run_files(path: Path) -> None:
    doomed = [path / name for name in RUN_FILES]
    doomed += [match for pattern in RUN_FILE_PATTERNS for match in path.glob(pattern)]
    for entry in doomed:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()


def _make_writable_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create run directory {path} ({error.strerror}); choose "
                          f"another --run_dir") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"run directory {path} is not writable; choose another --run_dir")


def _choose_path(run_dir: str | None, default_root: str, resume: bool) -> Path:
    if run_dir:
        return Path(run_dir).expanduser().absolute()
    if RUN_DIR_ENV not in os.environ and (rank_zero_only.rank != 0
                                          or _launched_outside_lightning()):
        # Checked on every rank, rank 0 included: a rank that stopped alone would leave the
        # others waiting for it in DDP set-up until the process-group timeout.
        raise ConfigError("processes launched outside Lightning (torchrun, srun) need "
                          "an explicit --run_dir shared by all of them")
    if rank_zero_only.rank != 0:
        return Path(os.environ[RUN_DIR_ENV])
    root = Path(default_root).expanduser().absolute()
    versions = _versions(root)
    if resume and versions:
        return root / f"version_{versions[-1]}"
    return _new_version_dir(root, versions[-1] + 1 if versions else 0)


def _launched_outside_lightning() -> bool:
    """torchrun and srun start every process themselves and tell each the world size; a
    process Lightning starts gets the run directory from rank 0 (RUN_DIR_ENV) instead."""
    sizes = (os.environ.get("WORLD_SIZE", "1"), os.environ.get("SLURM_NTASKS", "1"))
    return any(size.isdigit() and int(size) > 1 for size in sizes)


def _new_version_dir(root: Path, number: int) -> Path:
    """Create the first free `root/version_N` from `number` on. Creating it claims it:
    two runs started at the same moment get different directories."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            (root / f"version_{number}").mkdir()
            return root / f"version_{number}"
        except FileExistsError:
            number += 1


def _wandb_id(path: Path, wandb_enabled: bool) -> str | None:
    id_file = path / WANDB_ID_FILE
    if id_file.is_file():
        return id_file.read_text().strip()
    if not wandb_enabled or rank_zero_only.rank != 0:
        return None
    # W&B's own form (8 lower-case letters and digits); `secrets` leaves the seeded RNGs be.
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    path.mkdir(parents=True, exist_ok=True)
    id_file.write_text(run_id + "\n")
    return run_id


def prepare_run_dir(run_dir: str | None, default_root: str, resume: bool, overwrite: bool,
                    checkpoint_dir: str | None, wandb_enabled: bool) -> RunDirectory:
    """Choose the run directory and check that this run may write there.

    Fails with a `ConfigError` before anything is written when the directory holds
    another run and neither resume nor overwrite was asked for.
    """
    if resume and overwrite:
        raise ConfigError("give at most one of --resume true and --overwrite true")
    target = Path(run_dir or default_root).expanduser().absolute()
    missing = [p for p in [target, *target.parents] if not p.exists()]  # deepest first
    path = _choose_path(run_dir, default_root, resume)
    new_path = run_dir is None and path.parent == target and path not in missing
    created = tuple(([path] if new_path and not resume else []) + missing)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run directory {path} is a file; choose another --run_dir")
    checkpoints = Path(checkpoint_dir).absolute() if checkpoint_dir else path / "checkpoints"
    lock = None
    if rank_zero_only.rank == 0:
        _make_writable_dir(path)
        # Taken before anything else is looked at: of two runs started at the same moment,
        # one gets it and the other is refused, whatever the folder held.
        lock = acquire_lock(path)
        try:
            if _holds_files(path) and not (resume or overwrite):
                raise ConfigError(f"run directory {path} already holds a run; continue it "
                                  f"with --resume true, replace it with --overwrite true, or "
                                  f"choose another --run_dir")
        except ConfigError:
            release_lock(lock)
            raise
        if overwrite and _holds_files(path):
            rank_zero_info(f"--overwrite: deleting the run in {path}")
            _remove_run_files(path)
        _remove_temporary_checkpoints(checkpoints)
        os.environ[RUN_DIR_ENV] = str(path)
    last = checkpoints / LAST_CHECKPOINT
    resume_from = last if resume and last.is_file() else None
    if resume:
        rank_zero_info(f"Resuming {path} from {last}" if resume_from else
                       f"--resume: no checkpoint in {checkpoints} yet; starting the run in {path}")
    return RunDirectory(path=path, checkpoint_dir=checkpoints, resume_from=resume_from,
                        wandb_id=_wandb_id(path, wandb_enabled), created=created, lock=lock)


def resume_where_config_lies(config_files: Any, recorded: str | None) -> str | None:
    """`--config <run>/config.yaml --resume true` resumes the run in <run>, where that
    config file lies, even when the run directory was moved after config.yaml recorded
    its old place (returned as the run directory to use; `recorded` otherwise)."""
    for config_file in reversed(config_files or []):
        folder = Path(str(config_file)).expanduser().absolute().parent
        is_run = (folder / "config.yaml").is_file() and (folder / "checkpoints").is_dir()
        if is_run and (recorded is None or Path(recorded).absolute() != folder):
            rank_zero_info(f"Resuming the run where its config.yaml lies, {folder} (it "
                           f"recorded {recorded}: the run was moved)")
            return str(folder)
    return recorded


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def check_resume_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse to resume with settings that differ from those the run was started with.

    `config` is this invocation's resolved configuration (as saved in config.yaml).
    Settings only one side has (options added to the code since) are not compared.
    """
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    with open(saved_path) as file:
        saved = _flatten(yaml.safe_load(file) or {})
    current = _flatten(config)
    changed = [key for key in sorted(saved.keys() & current.keys())
               if saved[key] != current[key] and key not in MAY_CHANGE_ON_RESUME]
    if changed:
        details = ", ".join(f"{key}: {saved[key]!r} then, {current[key]!r} now"
                            for key in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise ConfigError(f"the run in {run_dir} was started with other settings ({details}"
                          f"{more}); resume with the same flags, e.g. --config "
                          f"{saved_path} --resume true")
