"""One run at a time in a run directory: a lock file holding the owner's process id.

Two runs (or two `--resume`s) in the same directory would interleave their metrics and
overwrite each other's checkpoints. The first takes `<run_dir>/.lock` (created
exclusively, so two starting at the same moment cannot both get it); a second is refused
in one line. A lock left by a process that has ended (killed, crashed) is taken over. The
lock is released when the run ends, however it ends.
"""

import atexit
import os
import socket
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info

from src.core.errors import ConfigError

LOCK_FILE = ".lock"


def _holder(lock: Path) -> tuple[int, str] | None:
    """(pid, host) written in a lock file, or None if it cannot be read."""
    try:
        pid, host = lock.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine's process: it cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def acquire_lock(run_dir: Path) -> Path:
    """Take `run_dir`'s lock for this process, taking over a stale one; ConfigError if a
    running process holds it."""
    lock = run_dir / LOCK_FILE
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(3):  # a stale lock removed by us, or one vanishing while we look
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            if holder is not None and _alive(*holder):
                pid, host = holder
                raise ConfigError(
                    f"run directory {run_dir} is in use by process {pid} on {host}; wait "
                    f"for that run to end or choose another --run_dir (if it is gone, delete "
                    f"{lock})") from None
            if holder is not None:
                rank_zero_info(f"{run_dir}: taking over the lock of process {holder[0]}, "
                               f"which has ended")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(me)
        atexit.register(release_lock, lock)
        return lock
    raise ConfigError(f"could not take the lock {lock}; another run keeps starting there")


def release_lock(lock: Path) -> None:
    """Remove `lock` if this process holds it (idempotent)."""
    holder = _holder(lock)
    if holder is not None and holder == (os.getpid(), socket.gethostname()):
        lock.unlink(missing_ok=True)
