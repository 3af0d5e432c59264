"""Ctrl-C outside the training steps (setup, testing): one line, exit 130, nothing lost.

Lightning's fit and test catch a KeyboardInterrupt themselves: they print "Detected
KeyboardInterrupt", end the process with exit status 1 and leave Ctrl-C ignored. The
commands' own Ctrl-C handler (src/cli/boundary.py) must come first.
"""

import json
import os
import signal

import lightning as L
import pytest

from experiments import cifar_mlp, seeds
from tests.checks import logged_values

HOOKS = ("setup", "test")


class CtrlCIn(L.Callback):
    """Send this process SIGINT, as a terminal's Ctrl-C does, in the callback hook `hook`
    ("setup": before training starts; "test": after it ended) of the run seeded `seed`
    (any run when None); with `once_file`, only while that file does not exist yet (it is
    made then), so the same flags run through the second time. Tests only."""

    def __init__(self, hook: str, seed: int | None = None, once_file: str | None = None):
        assert hook in HOOKS
        self.hook = hook
        self.seed = seed
        self.once_file = once_file

    def _press(self, hook: str) -> None:
        if hook != self.hook:
            return
        if self.seed is not None and os.environ.get("PL_GLOBAL_SEED") != str(self.seed):
            return
        if self.once_file is not None:
            if os.path.exists(self.once_file):
                return
            open(self.once_file, "w").close()
        os.kill(os.getpid(), signal.SIGINT)

    def setup(self, trainer, pl_module, stage):
        if stage == "fit":
            self._press("setup")

    def on_test_start(self, trainer, pl_module):
        self._press("test")


def ctrl_c_flag(hook: str, seed: int | None = None, once_file=None) -> str:
    init = json.dumps({"class_path": "test_ctrl_c.CtrlCIn", "init_args": {
        "hook": hook, "seed": seed, "once_file": None if once_file is None else str(once_file)}})
    return f"--trainer.callbacks+={init}"


def tiny_run_args(image_folder, *extra: str) -> list[str]:
    return ["--data.data_dir", str(image_folder), "--data.batch_size", "16",
            "--model.hidden_widths", "[16]", "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary",
            "false", *extra]


def interrupted(capsys, args: list[str], main=cifar_mlp.main) -> None:
    """Run `main(args)`, which must stop as interrupted: exit 130, one `Interrupted` line."""
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 130
    # Lightning's way (exit 1) would also have left Ctrl-C ignored for the rest of the process.
    assert signal.getsignal(signal.SIGINT) is handler_before
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "Interrupted"
    assert "Detected KeyboardInterrupt" not in err and "Traceback" not in err


def test_ctrl_c_before_training_starts_leaves_no_run_folder(image_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    interrupted(capsys, tiny_run_args(image_folder, "--run_dir", str(run_dir),
                                      ctrl_c_flag("setup")))
    # Nothing was trained: the folder it had made is gone, so the same command runs again.
    assert not run_dir.exists()
    results = cifar_mlp.main(tiny_run_args(image_folder, "--run_dir", str(run_dir)))
    assert results["test/acc"] == pytest.approx(logged_values(run_dir, "test/acc")[-1])


def test_ctrl_c_while_testing_keeps_the_trained_run(image_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    interrupted(capsys, tiny_run_args(image_folder, "--run_dir", str(run_dir),
                                      ctrl_c_flag("test")))
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not logged_values(run_dir, "test/acc")  # the test was cut short
    assert logged_values(run_dir, "val/acc")  # the epoch it trained is kept


def test_ctrl_c_in_the_setup_of_an_in_process_seed_stops_the_seeds_run(image_folder, tmp_path,
                                                                       capsys):
    out = tmp_path / "seeds"
    once = ctrl_c_flag("setup", seed=1, once_file=tmp_path / "pressed")
    args = ["--base", "cifar_mlp", "--seeds", "2", "--out_dir", str(out), "--isolation",
            "inprocess", "--", *tiny_run_args(image_folder, once)]
    interrupted(capsys, args, main=seeds.main)
    assert (out / "seed_0" / "trial.json").is_file()
    # Not a finished (failed) seed: the resume runs it, instead of reading back a failure.
    assert not (out / "seed_1" / "trial.json").exists()
    results = seeds.main([*args[:args.index("--")], "--resume", *args[args.index("--"):]])
    assert [(r.name, r.status, r.resumed) for r in results] == [
        ("seed_0", "done", False), ("seed_1", "done", True)]
    assert results[1].metrics.final["test/acc"] == pytest.approx(
        logged_values(out / "seed_1", "test/acc")[-1], abs=1e-6)
