"""Run an entry point the way a user does: `python -m experiments.<name> ...` in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_entry_point(module: str, args: list[str], env: dict[str, str | None] | None = None,
                    timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m <module> <args>` from the repository root.

    env: variables to set, or to remove where the value is None. `timeout` only guards
    against a hung run; tests never assert durations.
    """
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    full_env = {name: value for name, value in full_env.items() if value is not None}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]
