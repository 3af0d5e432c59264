"""Multi-seed runs: every seed trains, and the summary is the mean/std of their own logs."""

import csv
import json
import os
import signal
import statistics

import lightning as L
import pytest
import yaml

from experiments import seeds
from tests.checks import ctrl_c_when_starting, logged_values


@pytest.mark.slow
def test_seeds_report_mean_and_std_of_each_final_metric(image_folder, tmp_path, capsys):
    out = tmp_path / "seeds"
    results = seeds.main([
        "--base", "cifar_mlp", "--seeds", "2", "--first_seed", "5", "--out_dir", str(out), "--",
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--model.hidden_widths", "[16]", "--trainer.max_epochs", "1",
        "--trainer.enable_progress_bar", "false",
    ])  # default isolation: one process per seed
    assert [r.name for r in results] == ["seed_5", "seed_6"]
    for result, seed in zip(results, (5, 6), strict=True):
        config = yaml.safe_load(next(result.run_dir.rglob("config.yaml")).read_text())
        assert config["seed_everything"] == seed
    with (out / "seeds.csv").open() as file:
        summary = {row["metric"]: row for row in csv.DictReader(file)}
    # Each seed's final value of each metric, read from its metrics.csv here.
    for metric in ("test/acc", "test/loss", "val/loss", "train/loss_epoch"):
        values = [logged_values(r.run_dir, metric)[-1] for r in results]
        assert float(summary[metric]["mean"]) == pytest.approx(statistics.mean(values), abs=1e-4)
        assert float(summary[metric]["std"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
        assert summary[metric]["n"] == "2"
    best = [max(logged_values(r.run_dir, "val/acc")) for r in results]
    assert float(summary["best val/acc"]["mean"]) == pytest.approx(statistics.mean(best), abs=1e-4)
    assert "| test/acc |" in (out / "seeds.md").read_text()
    assert "| metric | mean | std | n | seed_5 | seed_6 |" in capsys.readouterr().out


def test_seeds_stopped_part_way_keep_the_table_of_the_seeds_that_finished(
        image_folder, tmp_path, monkeypatch):
    from src.cli import seeds as seeds_cli
    monkeypatch.setattr(seeds_cli, "run_or_read_trial",
                        ctrl_c_when_starting("seed_1", seeds_cli.run_or_read_trial))
    out = tmp_path / "seeds"
    with pytest.raises(SystemExit) as exit_info:
        seeds.main(["--base", "cifar_mlp", "--seeds", "3", "--out_dir", str(out),
                    "--isolation", "inprocess", "--", "--data.data_dir", str(image_folder),
                    "--data.batch_size", "16", "--model.hidden_widths", "[16]",
                    "--trainer.max_epochs", "1"])
    assert exit_info.value.code == 130
    # Its log is plain lines: no progress bar (which would also garble an error line).
    log = (out / "seed_0" / "output.log").read_text()
    assert "Test accuracy:" in log and "it/s" not in log and "\r" not in log
    with (out / "seeds.csv").open() as file:
        summary = {row["metric"]: row for row in csv.DictReader(file)}
    test_acc = logged_values(out / "seed_0", "test/acc")[-1]
    assert summary["test/acc"]["n"] == "1"
    assert float(summary["test/acc"]["seed_0"]) == pytest.approx(test_acc, abs=1e-4)
    assert (out / "seeds.md").read_text().startswith("# cifar_mlp: 1 of 3 seeds\n")


class SigtermAtStepOfSeed(L.Callback):
    """Send this process SIGTERM when training step `step` of the run seeded `seed` starts
    (tests only): the same flags go to every seed, as in a real seeds run."""

    def __init__(self, seed: int, step: int):
        self.seed = seed
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if os.environ.get("PL_GLOBAL_SEED") == str(self.seed) and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def tiny_seeds_args(image_folder, out, *extra):
    stop = json.dumps({"class_path": "test_seeds.SigtermAtStepOfSeed",
                       "init_args": {"seed": 1, "step": 8}})
    return ["--out_dir", str(out), "--isolation", "inprocess", *extra, "--",
            "--data.data_dir", str(image_folder), "--data.batch_size", "16",
            "--model.hidden_widths", "[16]", "--trainer.max_epochs", "2",
            "--trainer.enable_progress_bar", "false", f"--trainer.callbacks+={stop}"]


def test_seeds_resume_reads_back_finished_seeds_and_continues_the_stopped_one(
        image_folder, tmp_path, capsys):
    out = tmp_path / "seeds"
    with pytest.raises(SystemExit) as stopped:  # SIGTERM in step 8 of seed 1 (of 6 per epoch)
        seeds.main(["--base", "cifar_mlp", "--seeds", "2", *tiny_seeds_args(image_folder, out)])
    assert stopped.value.code == 143
    seed_0_record = (out / "seed_0" / "trial.json").read_text()
    assert not (out / "seed_1" / "trial.json").exists()

    # A different training flag is refused in one line, and nothing is touched.
    with pytest.raises(SystemExit) as refused:
        seeds.main(["--base", "cifar_mlp", "--seeds", "2", "--resume",
                    *tiny_seeds_args(image_folder, out), "--model.lr", "0.5"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"error: --resume: the seeds run in {out} was started with the training flags (after "
        f"--) [")
    assert not (out / "seed_1" / "trial.json").exists()

    # --seeds may grow: seed 2 is added.
    results = seeds.main(["--base", "cifar_mlp", "--seeds", "3", "--resume",
                          *tiny_seeds_args(image_folder, out)])
    printed = capsys.readouterr().out
    assert "[seeds] seed 0: " in printed and printed.count("finished earlier") == 1
    assert (out / "seed_0" / "trial.json").read_text() == seed_0_record  # not rerun
    assert [r.resumed for r in results] == [False, True, False]
    run_info = json.loads(next((out / "seed_1").rglob("run_info.json")).read_text())
    assert len(run_info["resumes"]) == 1  # one run folder, continued from its checkpoint
    assert logged_values(out / "seed_1", "val/acc") and len(logged_values(
        out / "seed_1", "val/acc")) == 2  # epochs 0 and 1, each logged once
    with (out / "seeds.csv").open() as file:
        summary = {row["metric"]: row for row in csv.DictReader(file)}
    assert summary["test/acc"]["n"] == "3"
    for seed in range(3):
        test_acc = logged_values(out / f"seed_{seed}", "test/acc")[-1]
        assert float(summary["test/acc"][f"seed_{seed}"]) == pytest.approx(test_acc, abs=1e-4)


def test_seeds_resume_refuses_a_folder_it_did_not_write(image_folder, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    with pytest.raises(SystemExit) as refused:
        seeds.main(["--base", "cifar_mlp", "--resume",
                    *tiny_seeds_args(image_folder, tmp_path / "other")])
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --resume: {tmp_path / 'other'} holds no seeds run to continue (no "
        f"seeds_settings.json); drop --resume to start one there")
