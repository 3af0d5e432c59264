"""Loggers for a run: a local CSV log always, and Weights & Biases when asked for.

W&B must never block or crash training: with no API key, or with the W&B server out of
reach (checked with a 3-second connection attempt), the run is logged offline under
`<save_dir>/wandb/` and can be uploaded later with `wandb sync`. Only an explicit
`--wandb.mode online` insists on the server, and then fails at once with one line.
"""

import netrc
import os
import socket
from pathlib import Path
from urllib.parse import ParseResult, urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from src.errors import ConfigError, lookup

WANDB_MODES = ("auto", "online", "offline")
CODE_ROOT = Path(__file__).resolve().parents[1]


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


def build_loggers(save_dir: str, wandb_enabled: bool, wandb_project: str,
                  wandb_name: str | None, wandb_mode: str = "auto") -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(save_dir=save_dir, name="")]
    if wandb_enabled:
        mode = resolve_wandb_mode(wandb_mode)
        import wandb

        # W&B records the git state of the code, not of save_dir (which may not exist yet:
        # it is only created once the run starts, so a failed start leaves nothing behind).
        in_git = (CODE_ROOT / ".git").exists()
        loggers.append(WandbLogger(
            project=wandb_project, name=wandb_name, save_dir=save_dir,
            offline=mode == "offline",
            log_model=mode == "online",  # best and last checkpoints as artifacts at the end
            settings=wandb.Settings(init_timeout=60, silent=True, disable_git=not in_git,
                                    git_root=str(CODE_ROOT) if in_git else None),
        ))
    return loggers
