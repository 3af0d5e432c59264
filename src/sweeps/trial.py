"""Run one training run (a sweep trial, a seed) through an entry point, and read its results.

A trial is `python -m <module> <flags...> --trainer.default_root_dir <trial dir>`:
- isolation "subprocess" (default): a fresh Python process per trial, so nothing (memory,
  global state, a crash) leaks from one trial into the next;
- isolation "inprocess": `<module>.main(flags)` in this process; no start-up cost per
  trial (a few seconds for torch and Lightning), for small runs and tests.
Either way the output goes to `<trial dir>/output.log` and the results are read from the
CSV log the run wrote under its folder.

Stopping: a SIGTERM or Ctrl-C that reaches this process while a subprocess trial runs is
passed on to the trial, which saves its last checkpoint and stops; then this process stops
too (exit 143 or 130). The trial runs in its own session, so a Ctrl-C in the terminal reaches
it once, through here: a second copy would stop it without saving.
"""

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.callbacks.last_checkpoint import StopRequested
from src.core.errors import ConfigError, lookup
from src.core.signal_handlers import handling
from src.sweeps.pruning import PRUNED_FILE
from src.sweeps.run_metrics import RunMetrics, find_metrics_file, read_metrics

ISOLATIONS = ("subprocess", "inprocess")
INTERRUPTED = 130  # the entry points' exit status after Ctrl-C
TERMINATED = 143  # ... and after SIGTERM
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INPUT_ERROR = 2  # the entry points' exit status when the run cannot start as configured
TRIAL_RECORD = "trial.json"  # exit code and seconds, once the trial has ended on its own
STOPPED_PARTS = "stopped_parts.json"  # seconds of each part a signal stopped, in order
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


@dataclass
class TrialResult:
    name: str  # e.g. trial_003 or seed_1: also its folder name
    params: dict[str, Any]
    status: str  # "done", "pruned" or "failed"
    seconds: float
    run_dir: Path
    metrics: RunMetrics | None = None
    pruned: dict[str, Any] = field(default_factory=dict)  # epoch, val_acc, median
    error: str = ""
    phase: str = ""  # sweeps: grid, random, coarse or fine
    exit_code: int = 0
    # Continued from a checkpoint: `seconds` adds up the parts a signal stopped and the last
    # one; a part killed without a signal (SIGKILL, a crash) left no record and is missing.
    resumed: bool = False
    earlier: bool = False  # read back: it finished in an earlier run of the command

    def how_run(self) -> str:
        """"finished earlier", "41 s" or "41 s in all, resumed"."""
        if self.earlier:
            return "finished earlier"
        return f"{self.seconds:.0f} s" + (" in all, resumed" if self.resumed else "")

    @property
    def best_val_acc(self) -> float | None:
        return self.metrics.best_val_acc if self.metrics else None


def format_flag_value(value: Any) -> str:
    """A value as the CLI parses it back: true/false, null, [1, 2], 0.001, text."""
    if isinstance(value, bool) or value is None or isinstance(value, list | tuple | dict):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def params_to_flags(params: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in params.items():
        flags += [f"--{key}", format_flag_value(value)]
    return flags


def _run_subprocess(module: str, flags: list[str], log) -> int:
    # The trial runs the same code as this process, wherever it is started from.
    package = importlib.util.find_spec(module.partition(".")[0])
    package_root = str(Path(package.origin).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    # Its own session: signals reach it only through _signals_passed_on_to (below).
    process = subprocess.Popen([sys.executable, "-m", module, *flags], stdout=log,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    with _signals_passed_on_to(process) as received:
        code = process.wait()  # the handler does not raise: the wait goes on until it exits
    if received:  # this process was asked to stop: stop, however the trial ended
        return 128 + received[0].value
    return code


@contextlib.contextmanager
def _signals_passed_on_to(process: subprocess.Popen) -> Iterator[list[signal.Signals]]:
    """While `process` runs, send it each SIGTERM and SIGINT this process receives, as
    received (a second Ctrl-C still means "stop without saving"); yields the signals
    received, in order."""
    received: list[signal.Signals] = []

    def pass_on(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum))
        with contextlib.suppress(ProcessLookupError):  # it may have just exited
            process.send_signal(signum)

    with handling(FORWARDED_SIGNALS, pass_on):
        yield received


@contextlib.contextmanager
def _lightning_logs_to(stream) -> Iterator[None]:
    """Point Lightning's log handlers (bound to the terminal at import) at `stream`."""
    handlers = [handler for name in LIGHTNING_LOGGERS
                for handler in logging.getLogger(name).handlers
                if isinstance(handler, logging.StreamHandler)]
    previous = [handler.stream for handler in handlers]
    for handler in handlers:
        handler.setStream(stream)
    try:
        yield
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            handler.setStream(old)


def _run_inprocess(module: str, flags: list[str], log) -> int:
    main = importlib.import_module(module).main
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
            _lightning_logs_to(log):
        try:
            main(flags)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # one broken trial must not end the whole sweep
            traceback.print_exc(file=log)
            return 1
    return 0


# The entry point's one-line report, also where a progress bar left no newline before it
# ("Epoch 1/2:   7%|...| 3/45 [...]error: training loss is nan ...").
_REPORT = re.compile(r"(?:^|\])(error: .*)$")


def _error_line(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [match.group(1) for line in lines if (match := _REPORT.search(line))]
    return (errors or lines or ["no output"])[-1]


def check_first_run_started(result: TrialResult) -> None:
    """A first run that cannot start (bad flags, missing data) means every run would fail
    the same way: stop at once with its error instead of repeating it."""
    if result.exit_code == INPUT_ERROR:
        raise ConfigError(f"the first run could not start ({result.error.removeprefix('error: ')}"
                          f"); log: {result.run_dir / 'output.log'}")


def run_trial(module: str, name: str, params: dict[str, Any], flags: list[str],
              trial_dir: Path, isolation: str = "subprocess", resume: bool = False) -> TrialResult:
    """Run `module` with `flags` (the params already among them) in a fresh `trial_dir`;
    with `resume`, continue the trial stopped part-way there from its last checkpoint
    (`--resume true`; output.log is appended to)."""
    runner = lookup({"subprocess": _run_subprocess, "inprocess": _run_inprocess}, isolation,
                    "isolation")
    trial_dir.mkdir(parents=True, exist_ok=resume)
    log_path = trial_dir / "output.log"
    all_flags = [*flags, "--trainer.default_root_dir", str(trial_dir),
                 *(["--resume", "true"] if resume else [])]
    (trial_dir / "command.txt").write_text(
        shlex.join([sys.executable, "-m", module, *all_flags]) + "\n")
    started = time.monotonic()
    with log_path.open("a" if resume else "w") as log:
        code = runner(module, all_flags, log)
    seconds = time.monotonic() - started
    stopped_parts = read_stopped_parts(trial_dir)
    if code in (INTERRUPTED, TERMINATED):  # its time counts when it is continued
        (trial_dir / STOPPED_PARTS).write_text(json.dumps([*stopped_parts, seconds]) + "\n")
    if code == INTERRUPTED:
        raise KeyboardInterrupt
    if code == TERMINATED:
        raise StopRequested("SIGTERM", f"SIGTERM received: stopped during {name} (its folder: "
                                       f"{trial_dir}); the runs before it are kept: continue with "
                                       f"the same command plus --resume")
    # Only a trial that ended on its own has a record: that is what makes it finished.
    (trial_dir / TRIAL_RECORD).write_text(json.dumps(
        {"exit_code": code, "seconds": sum(stopped_parts) + seconds, "resumed": resume}) + "\n")
    return read_finished_trial(name, params, trial_dir)


def read_stopped_parts(trial_dir: Path) -> list[float]:
    """The seconds of each earlier part of the trial in `trial_dir` that a signal stopped."""
    path = trial_dir / STOPPED_PARTS
    return json.loads(path.read_text()) if path.is_file() else []


def run_or_read_trial(module: str, name: str, params: dict[str, Any], flags: list[str],
                      trial_dir: Path, isolation: str = "subprocess") -> TrialResult:
    """For a command that continues a stopped run of itself (`--resume`): the trial that
    ended in `trial_dir` is read back; one stopped part-way continues from its last
    checkpoint; in a new folder it runs."""
    if (trial_dir / TRIAL_RECORD).is_file():
        result = read_finished_trial(name, params, trial_dir)
        result.earlier = True
        return result
    return run_trial(module, name, params, flags, trial_dir, isolation,
                     resume=trial_dir.exists())


def read_finished_trial(name: str, params: dict[str, Any], trial_dir: Path) -> TrialResult:
    """The result of the trial that ended in `trial_dir`, from its record and its logs."""
    record = json.loads((trial_dir / TRIAL_RECORD).read_text())
    code = record["exit_code"]
    metrics_file = find_metrics_file(trial_dir)
    metrics = read_metrics(metrics_file) if metrics_file else None
    result = TrialResult(name, params, "done", record["seconds"], trial_dir, metrics,
                         exit_code=code, resumed=record["resumed"])
    if code != 0 or metrics is None or metrics.best_val_acc is None:
        result.status = "failed"
        result.error = _error_line(trial_dir / "output.log") if code != 0 else \
            "the run logged no val/acc (no validation set, or no epoch finished)"
    elif pruned_files := sorted(trial_dir.rglob(PRUNED_FILE)):
        # The pruner writes into the trial's run directory (<trial dir>/version_0/).
        result.status = "pruned"
        result.pruned = json.loads(pruned_files[0].read_text())
    return result
