"""Multi-seed runs: every seed trains, and the summary is the mean/std of their own logs."""

import csv
import statistics

import pytest
import yaml

from experiments import seeds
from src.sweeps.run_metrics import find_metrics_file, read_metrics


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
    logged = [read_metrics(find_metrics_file(r.run_dir)) for r in results]
    with (out / "seeds.csv").open() as file:
        summary = {row["metric"]: row for row in csv.DictReader(file)}
    for metric in ("test/acc", "test/loss", "val/loss", "train/loss_epoch"):
        values = [run.final[metric] for run in logged]
        assert float(summary[metric]["mean"]) == pytest.approx(statistics.mean(values), abs=1e-4)
        assert float(summary[metric]["std"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
        assert summary[metric]["n"] == "2"
    best = [max(run.val_acc_by_epoch.values()) for run in logged]
    assert float(summary["best val/acc"]["mean"]) == pytest.approx(statistics.mean(best), abs=1e-4)
    assert "| test/acc |" in (out / "seeds.md").read_text()
    assert "| metric | mean | std | n | seed_5 | seed_6 |" in capsys.readouterr().out
