"""Loggers for a run: a local CSV log always, and Weights & Biases when asked for.

Both write into the run directory: `<run_dir>/metrics.csv` and `<run_dir>/wandb/`. A
resumed run appends to its CSV log (`ResumableCSVLogger`) and continues the same W&B run
(the id is kept in `<run_dir>/wandb_run_id`).

W&B must never block or crash training: with no API key, or with the W&B server out of
reach (checked with a 3-second connection attempt), the run is logged offline under
`<run_dir>/wandb/` and can be uploaded later with `wandb sync`. Only an explicit
`--wandb.mode online` insists on the server, and then fails at once with one line.
"""

import csv
import netrc
import os
import socket
import sys
from pathlib import Path
from urllib.parse import ParseResult, urlparse

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_info

from src.core.errors import ConfigError, lookup
from src.core.project import PROJECT_ROOT

WANDB_MODES = ("auto", "online", "offline")


def _wandb_url() -> ParseResult:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))


def _wandb_host() -> str:
    return _wandb_url().hostname


def has_wandb_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(_wandb_host()) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_server_reachable(timeout_s: float = 3.0) -> bool:
    try:
        url = _wandb_url()
        port = url.port or (80 if url.scheme == "http" else 443)
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _why_offline() -> str | None:
    """Why W&B cannot log online from here, or None when it can."""
    if not has_wandb_api_key():
        return "no API key (wandb login / WANDB_API_KEY)"
    if not wandb_server_reachable():
        return f"{_wandb_url().netloc} is out of reach"
    return None


def resolve_wandb_mode(requested: str) -> str:
    """"online" or "offline": auto goes online only with a key and a reachable server."""
    lookup({mode: mode for mode in WANDB_MODES}, requested, "W&B mode")
    if requested == "offline" or os.environ.get("WANDB_MODE") in ("offline", "dryrun"):
        return "offline"
    reason = _why_offline()
    if reason is None:
        return "online"
    if requested == "online":  # asked for explicitly: fail now, not after wandb's timeout
        raise ConfigError(f"--wandb.mode online: {reason}; log in or use --wandb.mode auto "
                          f"to log offline and upload later with `wandb sync`")
    rank_zero_info(f"W&B: {reason}; logging offline (upload later with `wandb sync`)")
    return "offline"


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, but an existing metrics.csv is continued, not deleted.

    Rows logged by a killed run after its last checkpoint are logged again by the resumed
    run, at the same steps: for those, the newer values replace the older ones.
    """

    INDEX_KEYS = ("step", "epoch")

    def _check_log_dir_exists(self) -> None:
        self._last_old_step = -1
        if not self._fs.isfile(self.metrics_file_path):
            return
        rows = self._read_rows()
        if not rows:  # a header alone, or a file a kill cut short in its header
            self._fs.rm_file(self.metrics_file_path)
            return
        self.metrics_keys = sorted({key for row in rows for key in row})
        self._last_old_step = max(int(float(row["step"])) for row in rows)
        self._write_rows(rows)  # without a line the kill may have cut short

    def _read_rows(self) -> list[dict[str, str]]:
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            rows = list(csv.DictReader(file))
        # A row with fewer cells than the header (None values) or more (a None key) is a
        # line a kill cut short while it was written: its step and values cannot be trusted.
        return [row for row in rows if None not in row and None not in row.values()]

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        temporary = f"{self.metrics_file_path}.tmp"  # a kill now leaves the old file whole
        with self._fs.open(temporary, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(rows)
        self._fs.mv(temporary, self.metrics_file_path)

    def save(self) -> None:
        if self.metrics and min(row["step"] for row in self.metrics) <= self._last_old_step:
            self._drop_values_logged_again()
        super().save()

    def _drop_values_logged_again(self) -> None:
        new_keys_at_step: dict[int, set[str]] = {}
        for row in self.metrics:
            new_keys_at_step.setdefault(int(row["step"]), set()).update(row)
        kept = []
        for row in self._read_rows():
            for key in new_keys_at_step.get(int(float(row["step"])), ()):
                # A key the old log never had (the killed run stopped before logging it)
                # has nothing to drop; adding it would give the row a column the file lacks.
                if key in row and key not in self.INDEX_KEYS:
                    row[key] = ""
            if any(value != "" for key, value in row.items() if key not in self.INDEX_KEYS):
                kept.append(row)
        self._write_rows(kept)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing `<log_dir>/metrics.csv`, appending when the file already exists."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def build_loggers(run_dir: Path, wandb_enabled: bool, wandb_project: str,
                  wandb_name: str | None, wandb_mode: str = "auto",
                  wandb_id: str | None = None, wandb_group: str | None = None) -> list[Logger]:
    """A CSV log in `run_dir`, plus W&B (run `wandb_id`, resumed if it exists) if enabled;
    `wandb_group` puts the run in a W&B group (a study's or a sweep's runs)."""
    loggers: list[Logger] = [
        ResumableCSVLogger(save_dir=run_dir.parent, name="", version=run_dir.name)]
    if wandb_enabled:
        mode = resolve_wandb_mode(wandb_mode)
        import wandb

        # W&B records the git state of the code, not of save_dir (which may not exist yet:
        # it is only created once the run starts, so a failed start leaves nothing behind).
        in_git = (PROJECT_ROOT / ".git").exists()
        loggers.append(WandbLogger(
            project=wandb_project, name=wandb_name, group=wandb_group, save_dir=str(run_dir),
            id=wandb_id, resume="allow",  # same id after a restart: the same W&B run
            offline=mode == "offline",
            log_model=mode == "online",  # best and last checkpoints as artifacts at the end
            settings=wandb.Settings(init_timeout=60, silent=True, disable_git=not in_git,
                                    git_root=str(PROJECT_ROOT) if in_git else None),
        ))
    return loggers


def finish_wandb_run(failed: bool = False) -> None:
    """End this process's W&B run, if one is active. Lightning leaves it open after fit and
    test, and a later WandbLogger in the same process (the next in-process sweep trial or
    study variant) would otherwise log into it instead of starting its own run."""
    wandb = sys.modules.get("wandb")  # never import wandb just to find it unused
    if wandb is None or wandb.run is None:
        return
    run = wandb.run
    offline_dir = Path(run.settings.sync_dir) if run.offline else None
    wandb.finish(exit_code=1 if failed else 0)
    if offline_dir is not None:
        print(f"W&B run logged offline in {offline_dir}; upload it with: wandb sync "
              f"{offline_dir}", flush=True)
