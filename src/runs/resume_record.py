"""The settings a multi-run command (seeds, a study, the benchmark) started with, kept in its
output folder, so that `--resume` continues it only with the same settings: one table must
never mix runs made two ways."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.core.errors import ConfigError

Record = dict[str, Any]


def setting_difference(earlier: Record, now: Record) -> str | None:
    """The first setting whose value differs, in words, its key as the user knows it
    (`--steps 2, not 3`); None: the same."""
    for key in sorted(set(earlier) | set(now)):
        if earlier.get(key) != now.get(key):
            return f"{key} {json.dumps(earlier.get(key))}, not {json.dumps(now.get(key))}"
    return None


def open_output(given: Path | None, default: Path, resume: bool, file_name: str,
                record: Record, what: str) -> Path:
    """The output folder of a seeds run, study or sweep: `given` (--out_dir) or `default`.
    A fresh start needs it new or empty; a resume needs it named. Then `start_or_check`."""
    if resume and given is None:
        raise ConfigError(f"--resume needs the --out_dir of the {what} to continue")
    out_dir = given or default
    if not resume and out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} already holds files; choose a new --out_dir folder")
    start_or_check(out_dir, file_name, record, resume, what)
    return out_dir


def start_or_check(out_dir: Path, file_name: str, record: Record, resume: bool, what: str,
                   difference: Callable[[Record, Record], str | None] = setting_difference,
                   ) -> None:
    """A fresh start writes `record` to `out_dir/file_name`. A resume refuses, in one line,
    a folder without that file, or whose record `difference` finds unlike this one."""
    path = out_dir / file_name
    if not resume:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
        return
    if not path.is_file():
        raise ConfigError(f"--resume: {out_dir} holds no {what} to continue (no {file_name}); "
                          f"drop --resume to start one there")
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"--resume: cannot read {path} ({error}); choose a new "
                          f"--out_dir") from None
    different = difference(earlier, record)
    if different:
        raise ConfigError(f"--resume: the {what} in {out_dir} was started with {different}; "
                          f"rerun its own command with --resume, or choose a new --out_dir")
