"""The one error boundary of every command: how a run ends, in one line and an exit status.

| what happened                                   | printed (stderr)      | exit status |
| ----------------------------------------------- | --------------------- | ----------- |
| bad input: flag, value, config, data, checkpoint | `error: <one line>`   | 2           |
| training diverged (NaN/inf loss or weights)     | `error: <one line>`   | 1           |
| SIGTERM / Ctrl-C during training (last.ckpt kept) | `stopped: <one line>` | 143 / 130   |
| Ctrl-C anywhere else (setup, testing, between runs) | `Interrupted`     | 130         |

Command-line mistakes (an unknown flag, a value of the wrong type, a missing --config
file) are reported the same way, with the closest valid flag where there is one, instead
of the parser's usage text.
"""

import argparse
import difflib
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from src.callbacks.finite_guard import TrainingDiverged
from src.callbacks.last_checkpoint import Interrupted, StopRequested
from src.core.errors import ConfigError, UserInputError
from src.core.signal_handlers import handling

T = TypeVar("T")


def one_line(text: str) -> str:
    """A library message that may span lines, as one line."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _ctrl_c_handler(command_pid: int) -> Callable[[int, object], None]:
    """Ctrl-C outside training raises Interrupted in the command's process; a forked
    DataLoader worker, which inherits the handler, stops as it always has."""
    def interrupt(signum: int, frame: object) -> None:
        if os.getpid() != command_pid:
            raise KeyboardInterrupt
        raise Interrupted
    return interrupt


def run_command(work: Callable[[], T], cleanup: Callable[[], None] | None = None) -> T:
    """Run a command; every way it can end is turned into one line and an exit status.

    `cleanup` runs first when the command fails on bad input or is interrupted by Ctrl-C
    (e.g. remove the run folder it had created, if it holds no checkpoint yet)."""
    try:
        with handling([signal.SIGINT], _ctrl_c_handler(os.getpid())):
            return work()
    except (UserInputError, MisconfigurationException) as error:
        if cleanup is not None:
            cleanup()
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except StopRequested as stop:
        print(f"stopped: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None
    except SIGTERMException:
        # Lightning's own handler: the signal came outside the training steps (sanity
        # check, testing), so no training progress is lost beyond the last checkpoint.
        print("stopped: SIGTERM received outside training; the last checkpoint is kept "
              "(continue with --resume true)", file=sys.stderr)
        raise SystemExit(143) from None
    except (KeyboardInterrupt, Interrupted):
        if cleanup is not None:
            cleanup()
        print("Interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def parse_error(message: str, flags: Iterable[str], command: str) -> ConfigError:
    """A parser's complaint as one line: the bad flag or value, the closest valid flag,
    and where to look (`<command> --help`)."""
    text = str(message).strip()
    hint = f"(see {command} --help)"
    unknown = re.match(r"unrecognized arguments?: (\S+)", text, re.IGNORECASE)
    if unknown:
        flag = unknown.group(1).split("=", 1)[0]
        if not flag.startswith("-"):
            return ConfigError(f"unexpected argument {flag!r} {hint}")
        close = difflib.get_close_matches(flag, sorted(set(flags)), n=1, cutoff=0.6)
        suggestion = f"; did you mean {close[0]}?" if close else ""
        return ConfigError(f"unknown flag {flag}{suggestion} {hint}")
    missing = re.match(r"the following arguments are required: (.+)", text)
    if missing:
        names = [name.strip().lstrip("-") for name in missing.group(1).split(",")]
        known = set(flags)  # a name that is no flag is a positional argument
        shown = [f"--{name}" if f"--{name}" in known else name for name in names]
        return ConfigError(f"missing {', '.join(shown)} {hint}")
    key = re.match(r'Parser key "([^"]+)":\s*(.*)', text, re.DOTALL)
    if key:
        name, detail = key.groups()
        return ConfigError(f"--{name}: {_condensed(detail)} {hint}")
    return ConfigError(f"{_condensed(text)} {hint}")


def _condensed(detail: str) -> str:
    """jsonargparse's multi-line type errors, shortened to what the user needs."""
    text = re.sub(r"<class '([\w.]+)'>", r"\1", detail)
    lines = [line.strip(" -") for line in text.splitlines() if line.strip(" -")]
    subtypes = next((line for line in lines if line.startswith("Subtypes:")), None)
    given = next((line for line in lines if line.startswith("Given value:")), None)
    if subtypes and given:  # a union such as int | None
        return (f"expected one of {subtypes.removeprefix('Subtypes: ')}, got "
                f"{given.removeprefix('Given value: ')}")
    return "; ".join(lines)


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every flag a parser (argparse or jsonargparse) accepts."""
    return [flag for action in parser._actions for flag in action.option_strings]


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a mistake ends in one `error:` line (through `run_command`) with the
    closest valid flag, instead of the usage text."""

    def error(self, message: str):
        raise parse_error(message, option_strings(self), self.prog)


def parse_in_one_line(parser, argv: list[str] | None):
    """jsonargparse's parse_args for a parser built with exit_on_error=False: its
    ArgumentError becomes the same one `error:` line as OneLineArgumentParser's."""
    try:
        return parser.parse_args(argv)
    except Exception as error:  # jsonargparse's ArgumentError and its subclasses
        raise parse_error(str(error), option_strings(parser), parser.prog) from None
