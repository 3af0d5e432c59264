"""Sweeps: search spaces, budget, pruning, reports, coarse-to-fine, W&B export."""

import csv
import json
import random
from types import SimpleNamespace

import pytest
import torch
import yaml

from experiments import cifar_mlp, sweep
from src.callbacks.last_checkpoint import StopRequested
from src.core.errors import ConfigError
from src.sweeps.pruning import MedianPruner, add_to_history
from src.sweeps.runner import BudgetClock, Sweep, max_time_flag
from src.sweeps.space import Choice, Range, grid, parse_space, refine_around, sample
from src.sweeps.spec import Budget, load_yaml, parse_spec
from src.sweeps.trial import TrialResult, run_or_read_trial
from src.sweeps.wandb_config import wandb_sweep_config
from tests.checks import (
    best_checkpoint,
    checkpoint_best_score,
    ctrl_c_when_starting,
    logged_values,
)

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def tiny_flags(image_folder, epochs: int) -> list[str]:
    return ["--data.data_dir", str(image_folder), "--data.batch_size", "16",
            "--model.hidden_widths", "[16]", "--trainer.max_epochs", str(epochs), *QUIET]


def write_spec(path, **spec):
    path.write_text(yaml.safe_dump({"base": "cifar_mlp", **spec}))
    return path


def read_rows(path):
    with path.open() as file:
        return list(csv.DictReader(file))


# -- spaces, budget and pruning rule: no training --

def test_yaml_reads_exponent_floats_and_spaces_check_their_input():
    assert load_yaml("a: 1e-3\nb: [3e-4, 1.0e-2]") == {"a": 0.001, "b": [0.0003, 0.01]}
    with pytest.raises(ConfigError, match="not a dotted config key"):
        parse_space({"lr": [0.1]})
    with pytest.raises(ConfigError, match="min .*log scale"):
        parse_space({"model.lr": {"min": 0, "max": 1, "log": True}})
    with pytest.raises(ConfigError, match="a grid needs"):
        grid(parse_space({"model.lr": {"min": 0.1, "max": 1}}))


def test_grid_is_the_full_product_with_log_spaced_ranges():
    space = parse_space({"model.lr": {"min": 1e-4, "max": 1e-1, "num": 4, "log": True},
                         "model.norm": ["batch", "layer"]})
    points = grid(space)
    assert len(points) == 8
    assert [p["model.lr"] for p in points[::2]] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert [p["model.norm"] for p in points[:2]] == ["batch", "layer"]


def test_random_samples_stay_in_bounds_and_log_ranges_are_log_uniform():
    space = parse_space({"model.lr": {"min": 1e-5, "max": 1e-1, "log": True},
                         "model.dropout": {"min": 0.0, "max": 0.5},
                         "data.batch_size": {"min": 16, "max": 512, "log": True, "int": True},
                         "model.norm": ["batch", "layer"]})
    rng = random.Random(0)
    draws = [sample(space, rng) for _ in range(2000)]
    lrs = [d["model.lr"] for d in draws]
    assert all(1e-5 <= lr <= 1e-1 for lr in lrs)
    # Log-uniform: each decade gets a quarter of the draws (uniform would put ~90% in the
    # top decade); half lie below the geometric mean 1e-3.
    for decade in range(4):
        share = sum(10 ** (-5 + decade) <= lr < 10 ** (-4 + decade) for lr in lrs) / len(lrs)
        assert share == pytest.approx(0.25, abs=0.04)
    dropouts = [d["model.dropout"] for d in draws]
    assert all(0.0 <= p <= 0.5 for p in dropouts)
    assert sum(p < 0.25 for p in dropouts) / len(dropouts) == pytest.approx(0.5, abs=0.05)
    sizes = [d["data.batch_size"] for d in draws]
    assert all(isinstance(s, int) and 16 <= s <= 512 for s in sizes)
    assert {d["model.norm"] for d in draws} == {"batch", "layer"}


def test_refinement_lies_between_the_grid_neighbours_of_the_best_point():
    space = parse_space({"model.lr": {"min": 1e-4, "max": 1e-1, "num": 4, "log": True},
                         "model.norm": ["batch", "layer"]})
    inner = refine_around(space, {"model.lr": grid(space)[2]["model.lr"], "model.norm": "layer"})
    assert inner.space["model.lr"] == Range(1e-4, 1e-2, log=True)
    assert inner.space["model.norm"] == Choice(("layer",)) and inner.at_edge == []
    edge = refine_around(space, {"model.lr": 0.1, "model.norm": "batch"})
    assert edge.space["model.lr"] == Range(1e-2, 1e-1, log=True)
    assert edge.at_edge == ["model.lr"]


def test_budget_clock_stops_on_trials_or_time():
    now = [100.0]
    clock = BudgetClock(Budget(max_trials=3, max_minutes=2), clock=lambda: now[0])
    assert clock.exhausted(2) is None and clock.remaining_seconds() == 120
    assert "trial budget" in clock.exhausted(3)
    now[0] += 119.5
    assert "time budget" in clock.exhausted(1)
    assert max_time_flag(3725.9) == ["--trainer.max_time", "00:01:02:05"]


def test_median_pruner_stops_only_trials_below_the_median_of_earlier_ones(tmp_path):
    history = tmp_path / "history.json"
    add_to_history(history, "trial_000", {0: 0.50, 1: 0.70})
    add_to_history(history, "trial_001", {0: 0.30, 1: 0.60})
    add_to_history(history, "trial_002", {0: 0.40})

    def judged(epoch, value, after_epochs=1, min_trials=2, max_epochs=5):
        trainer = SimpleNamespace(
            sanity_checking=False, current_epoch=epoch, max_epochs=max_epochs,
            should_stop=False, is_global_zero=True,
            callback_metrics={"val/acc": torch.tensor(value)}, default_root_dir=str(tmp_path))
        MedianPruner(str(history), after_epochs, min_trials).on_validation_end(trainer, None)
        return trainer.should_stop

    assert judged(0, 0.39)  # median of 0.5, 0.3, 0.4 is 0.4
    assert json.loads((tmp_path / "pruned.json").read_text())["median"] == pytest.approx(0.4)
    assert not judged(0, 0.40)
    assert judged(1, 0.64) and not judged(1, 0.66)  # median of 0.7, 0.6 is 0.65
    assert not judged(1, 0.10, min_trials=3)  # only two trials reached epoch 1
    assert not judged(0, 0.10, after_epochs=2)  # epoch 0 is before the judging starts
    assert not judged(2, 0.10)  # no earlier trial reached epoch 2
    assert not judged(1, 0.10, max_epochs=2)  # the last epoch: stopping saves nothing


# -- sweeps that train (in-process, tiny data) --

def test_grid_sweep_runs_every_trial_ranks_them_and_writes_a_usable_best_config(
        image_folder, tmp_path, capsys):
    spec = write_spec(tmp_path / "grid.yaml", method="grid",
                      parameters={"model.lr": [1e-2, 1e-6], "model.norm": ["batch", "layer"]},
                      flags=tiny_flags(image_folder, 1))
    out = tmp_path / "sweep"
    report = sweep.main([str(spec), "--out_dir", str(out), "--isolation", "inprocess",
                         "--no_prune"])
    assert len(report.results) == 4 and {r.status for r in report.results} == {"done"}
    rows = read_rows(out / "trials.csv")
    accs = [float(row["best val/acc"]) for row in rows]
    assert accs == sorted(accs, reverse=True) and len(rows) == 4
    assert {(row["model.lr"], row["model.norm"]) for row in rows} == {
        ("0.01", "batch"), ("0.01", "layer"), ("1e-06", "batch"), ("1e-06", "layer")}
    # The ranking comes from each run's own log: its best val/acc over epochs, which is
    # the score of the checkpoint the run kept.
    for result in report.results:
        assert result.best_val_acc == max(logged_values(result.run_dir, "val/acc"))
        best = best_checkpoint(next(result.run_dir.rglob("checkpoints")).parent)
        assert result.best_val_acc == pytest.approx(checkpoint_best_score(best), abs=1e-6)
    best = report.best
    assert best.best_val_acc == accs[0] and best.name == rows[0]["trial"]
    markdown = (out / "results.md").read_text()
    assert markdown.index(rows[0]["trial"]) < markdown.index(rows[-1]["trial"])
    assert "test/acc" not in markdown.split("| rank")[1].split("\n")[0]  # no test column
    rerun = parse_spec(load_yaml((out / "spec.yaml").read_text()))  # a spec again
    assert rerun.space == parse_spec(load_yaml(spec.read_text())).space and rerun.prune is None
    best_config = out / "best.yaml"
    assert yaml.safe_load(best_config.read_text()) == {
        "model": {"lr": best.params["model.lr"], "norm": best.params["model.norm"]}}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cifar_mlp.main(["--config", str(best_config), "--print_config"])
    assert exit_.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["lr"] == best.params["model.lr"]
    assert printed["model"]["norm"] == best.params["model.norm"]


def test_random_search_respects_the_trial_budget_and_its_bounds(image_folder, tmp_path):
    spec = write_spec(tmp_path / "random.yaml", method="random", trials=6, seed=3,
                      parameters={"model.lr": {"min": 1e-3, "max": 3e-2, "log": True},
                                  "model.dropout": {"min": 0.0, "max": 0.3}},
                      budget={"max_trials": 2}, flags=tiny_flags(image_folder, 1))
    out = tmp_path / "sweep"
    report = sweep.main([str(spec), "--out_dir", str(out), "--isolation", "inprocess"])
    assert [r.name for r in report.results] == ["trial_000", "trial_001"]
    assert "Stopped: trial budget spent (2 trials)" in (out / "results.md").read_text()
    for result in report.results:
        assert 1e-3 <= result.params["model.lr"] <= 3e-2
        assert 0.0 <= result.params["model.dropout"] <= 0.3
        config = yaml.safe_load(next(result.run_dir.rglob("config.yaml")).read_text())
        assert config["model"]["lr"] == result.params["model.lr"]  # the trial ran with it


def test_a_clearly_bad_trial_is_pruned_after_its_first_epoch(image_folder, tmp_path):
    spec = write_spec(tmp_path / "prune.yaml", method="grid",
                      parameters={"model.lr": [1e-2, 1e-7]},
                      prune={"after_epochs": 1, "min_trials": 1},
                      flags=tiny_flags(image_folder, 3))
    report = sweep.main([str(spec), "--out_dir", str(tmp_path / "sweep"), "--isolation",
                         "inprocess"])
    good, bad = report.results
    assert good.status == "done" and good.metrics.epochs == 3
    assert bad.status == "pruned" and bad.metrics.epochs == 1
    assert bad.pruned["epoch"] == 0 and bad.pruned["val_acc"] < bad.pruned["median"]
    assert report.best is good


def test_coarse_to_fine_runs_a_short_grid_then_longer_trials_around_the_best(
        image_folder, tmp_path):
    spec = write_spec(tmp_path / "c2f.yaml", method="coarse_to_fine",
                      parameters={"model.lr": {"min": 1e-4, "max": 1e-2, "num": 2, "log": True}},
                      coarse_to_fine={"coarse_epochs": 1, "fine_epochs": 2, "fine_trials": 2},
                      prune=False, flags=tiny_flags(image_folder, 5))
    out = tmp_path / "sweep"
    report = sweep.main([str(spec), "--out_dir", str(out), "--isolation", "inprocess"])
    phases = [r.phase for r in report.results]
    assert phases == ["coarse", "coarse", "fine", "fine"]
    coarse, fine = report.results[:2], report.results[2:]
    assert [r.params["model.lr"] for r in coarse] == pytest.approx([1e-4, 1e-2])
    assert all(r.metrics.epochs == 1 for r in coarse) and all(r.metrics.epochs == 2 for r in fine)
    assert all(1e-4 <= r.params["model.lr"] <= 1e-2 for r in fine)
    assert report.best in fine  # selected among the longer runs
    assert yaml.safe_load((out / "best.yaml").read_text())["model"]["lr"] == \
        report.best.params["model.lr"]
    assert len(read_rows(out / "trials.csv")) == 4


def test_a_stopped_sweep_resumes_with_the_same_trials_and_reads_back_the_finished_ones(
        image_folder, tmp_path, monkeypatch, capsys):
    from src.sweeps import runner
    spec = write_spec(tmp_path / "random.yaml", method="random", trials=3, seed=5,
                      parameters={"model.lr": {"min": 1e-3, "max": 3e-2, "log": True}},
                      prune=False, flags=tiny_flags(image_folder, 1))
    out = tmp_path / "sweep"
    args = [str(spec), "--out_dir", str(out), "--isolation", "inprocess"]
    monkeypatch.setattr(runner, "run_or_read_trial",
                        ctrl_c_when_starting("trial_001", runner.run_or_read_trial))
    with pytest.raises(SystemExit) as stopped:
        sweep.main(args)
    assert stopped.value.code == 130
    assert [row["trial"] for row in read_rows(out / "trials.csv")] == ["trial_000"]
    first_record = (out / "trial_000" / "trial.json").read_text()
    monkeypatch.undo()

    # Another spec in the same folder is refused in one line; nothing is touched.
    other = write_spec(tmp_path / "other.yaml", method="random", trials=3, seed=6,
                       parameters={"model.lr": {"min": 1e-3, "max": 3e-2, "log": True}},
                       prune=False, flags=tiny_flags(image_folder, 1))
    with pytest.raises(SystemExit) as refused:
        sweep.main([str(other), *args[1:], "--resume"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --resume: the sweep in {out} was started with the spec's seed 5, not 6; "
        f"rerun its own command with --resume, or choose a new --out_dir")

    report = sweep.main([*args, "--resume"])
    assert [r.earlier for r in report.results] == [True, False, False]
    assert (out / "trial_000" / "trial.json").read_text() == first_record  # not rerun
    # The same draws as an unbroken sweep: the seeded sampler, in order.
    space = parse_spec(load_yaml(spec.read_text())).space
    rng = random.Random(5)
    expected = [sample(space, rng)["model.lr"] for _ in range(3)]
    assert [r.params["model.lr"] for r in report.results] == pytest.approx(expected)
    assert len(read_rows(out / "trials.csv")) == 3
    assert "finished earlier" in capsys.readouterr().out


def test_the_time_budget_counts_the_seconds_of_trials_read_back():
    now = [100.0]
    clock = BudgetClock(Budget(max_trials=None, max_minutes=1), clock=lambda: now[0])
    clock.charge(45)  # a trial read back on a resume had taken 45 s
    assert clock.remaining_seconds() == pytest.approx(15)
    now[0] += 15
    assert clock.exhausted(1) == "time budget spent (1 minutes)"


TWO_PART_TRIAL = """
import time


def main(flags):  # a stand-in entry point: stopped by SIGTERM once, then continued
    if "--resume" in flags:
        time.sleep(0.2)
        return
    time.sleep(0.3)
    raise SystemExit(143)  # the entry point's exit status after SIGTERM
"""


def test_a_trial_stopped_by_a_signal_and_continued_counts_the_time_of_both_parts(
        tmp_path, monkeypatch):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "two_part_trial.py").write_text(TWO_PART_TRIAL)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    trial_dir = tmp_path / "trial_000"
    with pytest.raises(StopRequested):
        run_or_read_trial("two_part_trial", "trial_000", {}, [], trial_dir, "inprocess")
    (first_part,) = json.loads((trial_dir / "stopped_parts.json").read_text())
    assert first_part >= 0.3
    result = run_or_read_trial("two_part_trial", "trial_000", {}, [], trial_dir, "inprocess")
    assert result.resumed and result.seconds >= first_part + 0.2
    assert json.loads((trial_dir / "trial.json").read_text())["seconds"] == result.seconds
    assert result.how_run() == f"{result.seconds:.0f} s in all, resumed"


def test_a_resumed_sweep_charges_the_stopped_parts_of_the_trial_it_continues(
        tmp_path, monkeypatch):
    from src.sweeps import runner
    spec = parse_spec(load_yaml(yaml.safe_dump({
        "base": "cifar_mlp", "method": "grid", "parameters": {"model.lr": [0.1]},
        "budget": {"max_minutes": 1}})))
    out = tmp_path / "sweep"
    (out / "trial_000").mkdir(parents=True)  # stopped by a signal after 45 s
    (out / "trial_000" / "stopped_parts.json").write_text("[45.0]\n")
    flags_given = []

    def continued_trial(module, name, params, flags, trial_dir, isolation):
        flags_given.append(flags)
        return TrialResult(name, params, "failed", 46.0, trial_dir, error="stand-in",
                           exit_code=1, resumed=True)

    monkeypatch.setattr(runner, "run_or_read_trial", continued_trial)
    sweep_run = Sweep(spec, "experiments.cifar_mlp", out, "inprocess", echo=lambda line: None)
    sweep_run.budget = BudgetClock(spec.budget, clock=lambda: 100.0)  # no time passes
    sweep_run.run()
    # Its Trainer counts the 45 s itself (restored from its checkpoint): it is given the
    # whole remaining minute; the sweep's budget has 60 - 45 = 15 s left after it.
    max_time = flags_given[0][flags_given[0].index("--trainer.max_time") + 1]
    assert max_time == "00:00:01:00"
    assert sweep_run.budget.remaining_seconds() == pytest.approx(15)


def test_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    spec = write_spec(tmp_path / "bad.yaml", method="bayes", parameters={"model.lr": [0.1]})
    with pytest.raises(SystemExit) as exit_:
        sweep.main([str(spec), "--out_dir", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown sweep method 'bayes'; choose one of: coarse_to_fine, grid, random")
    assert not (tmp_path / "out").exists()


def test_a_first_trial_that_cannot_start_stops_the_sweep(image_folder, tmp_path, capsys):
    spec = write_spec(tmp_path / "typo.yaml", method="grid", parameters={"model.lr": [0.1, 0.2]},
                      flags=[*tiny_flags(image_folder, 1), "--model.norm", "bathc"])
    out = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_:
        sweep.main([str(spec), "--out_dir", str(out), "--isolation", "inprocess"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: the first run could not start (unknown norm 'bathc'")
    assert sorted(p.name for p in out.glob("trial_*")) == ["trial_000"]  # not repeated


def test_wandb_export_maps_the_space_and_the_command(tmp_path):
    spec = write_spec(tmp_path / "random.yaml", method="random", trials=5,
                      parameters={"model.lr": {"min": 1e-4, "max": 1e-1, "log": True},
                                  "data.batch_size": [64, 128]},
                      flags=["--trainer.max_epochs", "3"], prune={"after_epochs": 2})
    exported = tmp_path / "wandb.yaml"
    assert sweep.main([str(spec), "--export_wandb", str(exported), "--",
                       "--data.subset_per_class", "200"]) is None
    config = yaml.safe_load(exported.read_text())
    assert config["method"] == "random" and config["run_cap"] == 5
    assert config["metric"] == {"name": "val/acc", "goal": "maximize"}
    assert config["parameters"]["model.lr"] == {
        "distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}
    assert config["parameters"]["data.batch_size"] == {"values": [64, 128]}
    assert config["command"] == [
        "${env}", "${interpreter}", "-m", "experiments.cifar_mlp", "--trainer.max_epochs", "3",
        "--data.subset_per_class", "200", "--wandb.enabled", "true", "${args}"]
    assert config["early_terminate"] == {"type": "hyperband", "min_iter": 2}
    with pytest.raises(ConfigError, match="W&B sweeps run grid or random"):
        wandb_sweep_config(parse_spec({"base": "cifar_mlp", "method": "coarse_to_fine",
                                       "parameters": {"model.lr": [0.1]}}), "m")
