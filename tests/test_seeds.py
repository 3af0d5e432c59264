"""Multi-seed runs: every seed trains, and the summary is the mean/std of their own logs."""

import csv
import statistics

import pytest
import yaml

from experiments import seeds
from tests.checks import logged_values


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
    real_run_trial = seeds_cli.run_trial

    def ctrl_c_on_the_second_seed(module, name, *args):
        if name == "seed_1":
            raise KeyboardInterrupt
        return real_run_trial(module, name, *args)

    monkeypatch.setattr(seeds_cli, "run_trial", ctrl_c_on_the_second_seed)
    out = tmp_path / "seeds"
    with pytest.raises(SystemExit) as exit_info:
        seeds.main(["--base", "cifar_mlp", "--seeds", "3", "--out_dir", str(out),
                    "--isolation", "inprocess", "--", "--data.data_dir", str(image_folder),
                    "--data.batch_size", "16", "--model.hidden_widths", "[16]",
                    "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"])
    assert exit_info.value.code == 130
    with (out / "seeds.csv").open() as file:
        summary = {row["metric"]: row for row in csv.DictReader(file)}
    test_acc = logged_values(out / "seed_0", "test/acc")[-1]
    assert summary["test/acc"]["n"] == "1"
    assert float(summary["test/acc"]["seed_0"]) == pytest.approx(test_acc, abs=1e-4)
    assert (out / "seeds.md").read_text().startswith("# cifar_mlp: 1 of 3 seeds\n")
