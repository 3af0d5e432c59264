"""Loggers for a run: a local CSV log always, and Weights & Biases when asked for.

W&B must never block or crash training: with no API key, or with the W&B server out of
reach (checked with a 3-second connection attempt), the run is logged offline under
`<save_dir>/wandb/` and can be uploaded later with `wandb sync`.
"""

import netrc
import os
import socket
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from src.errors import lookup

WANDB_MODES = ("auto", "online", "offline")


def _wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname


def has_wandb_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(_wandb_host()) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_server_reachable(timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((_wandb_host(), 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_wandb_mode(requested: str) -> str:
    """"online" or "offline": auto goes online only with a key and a reachable server."""
    lookup({mode: mode for mode in WANDB_MODES}, requested, "W&B mode")
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun"):
        return "offline"
    if requested != "auto":
        return requested
    if not has_wandb_api_key():
        rank_zero_info("W&B: no API key (wandb login / WANDB_API_KEY); logging offline")
        return "offline"
    if not wandb_server_reachable():
        rank_zero_info(f"W&B: {_wandb_host()} is out of reach; logging offline "
                       f"(upload later with `wandb sync`)")
        return "offline"
    return "online"


def build_loggers(save_dir: str, wandb_enabled: bool, wandb_project: str,
                  wandb_name: str | None, wandb_mode: str = "auto") -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(save_dir=save_dir, name="")]
    if wandb_enabled:
        mode = resolve_wandb_mode(wandb_mode)
        os.makedirs(save_dir, exist_ok=True)
        import wandb

        loggers.append(WandbLogger(
            project=wandb_project, name=wandb_name, save_dir=save_dir,
            offline=mode == "offline",
            log_model=mode == "online",  # best and last checkpoints as artifacts at the end
            settings=wandb.Settings(init_timeout=60, silent=True),
        ))
    return loggers
