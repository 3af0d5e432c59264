"""A sweep, study, seeds run or benchmark stopped by SIGTERM or Ctrl-C while a subprocess
trial trains: the trial gets the signal exactly once, has time to save its checkpoint, and
is not left running; the parent then stops with 143 / 130.

The trial here is a stand-in module that records the signals it receives and takes a second
to "save" before exiting as the entry points do (128 + the signal number)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

STAND_IN_TRIAL = '''
import os, signal, sys, time
from pathlib import Path

folder = Path(sys.argv[sys.argv.index("--trainer.default_root_dir") + 1])
received = []
for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda number, frame: received.append(signal.Signals(number).name))
(folder / "pid").write_text(str(os.getpid()))
deadline = time.monotonic() + 60  # a broken test must not leave it running for long
while not received and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(1.0)  # the checkpoint save: a parent that kills its trial now loses it
(folder / "received.txt").write_text(" ".join(received))
sys.exit(128 + signal.Signals[received[0]].value if received else 0)
'''

PARENT = '''
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from src.cli.boundary import run_command
from src.sweeps.trial import run_trial
run_command(lambda: run_trial("stand_in.trial", "trial_000", {}, [], Path(sys.argv[2])))
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def parent(tmp_path):
    """Start the parent (run_trial on the stand-in, in its own process group like a
    command typed in a terminal); yields (parent, trial folder, trial pid)."""
    package = tmp_path / "modules" / "stand_in"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "trial.py").write_text(STAND_IN_TRIAL)
    trial_dir = tmp_path / "trial_000"
    process = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "modules"), str(trial_dir)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True)
    pid_file = trial_dir / "pid"
    deadline = time.monotonic() + 120
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    trial_pid = int(pid_file.read_text())
    yield process, trial_dir, trial_pid
    for pid in (process.pid, trial_pid):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_to_the_parent_reaches_the_trial_once_and_both_stop(parent):
    process, trial_dir, trial_pid = parent
    process.send_signal(signal.SIGTERM)  # as `kill PID` or a scheduler would
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == (
        f"stopped: SIGTERM received: stopped during trial_000 (its folder: {trial_dir}); "
        f"the runs before it are kept: continue with the same command plus --resume")
    assert (trial_dir / "received.txt").read_text() == "SIGTERM"  # saved, not killed
    assert not alive(trial_pid)


def test_ctrl_c_in_the_terminal_reaches_the_trial_once_and_waits_for_its_save(parent):
    process, trial_dir, trial_pid = parent
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "Interrupted"
    # Once: a second SIGINT would tell the entry point to stop without saving.
    assert (trial_dir / "received.txt").read_text() == "SIGINT"
    assert not alive(trial_pid)


def test_a_failed_trial_reports_the_error_line_even_after_a_progress_bar(tmp_path):
    """A progress bar leaves no newline before the entry point's report: the report is
    still the trial's error, not the bar."""
    from src.sweeps.trial import TRIAL_RECORD, read_finished_trial

    (tmp_path / "output.log").write_text(
        "Sanity Checking: |          | 0/? [00:00<?, ?it/s]\n"
        "\rEpoch 1/2:   7%|7         | 3/45 [00:00<00:00, 151.61it/s, v_num=on_0]error: "
        "training loss is nan at step 3, epoch 0, learning rate 1.12e+11; training stopped\n")
    (tmp_path / TRIAL_RECORD).write_text('{"exit_code": 1, "seconds": 2.0, "resumed": false}')
    result = read_finished_trial("seed_0", {}, tmp_path)
    assert result.status == "failed" and result.exit_code == 1
    assert result.error == ("error: training loss is nan at step 3, epoch 0, learning rate "
                            "1.12e+11; training stopped")
