"""experiments.benchmark runs on a CPU with tiny settings and writes its table.
Correctness only: no timing is asserted."""

import csv

import pytest

from experiments import benchmark

TINY = ["--steps", "3", "--warmup-steps", "5", "--train-images", "128", "--batch-size", "16",
        "--resnet-widths", "4", "8", "8", "8", "--mlp-widths", "8", "--num-workers", "1"]


def read_csv(path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_throughput_of_both_paths_and_models(tmp_path, capsys):
    rows = benchmark.main([*TINY, "--no-overhead", "--out", str(tmp_path)])
    assert [(row["model"], row["setup"]) for row in rows] == [
        ("resnet18", "fast path"), ("resnet18", "classic path"),
        ("mlp", "fast path"), ("mlp", "classic path")]
    for row in rows:
        assert row["images_per_s"] > 0 and row["epoch_s"] == pytest.approx(
            50_000 / row["images_per_s"])
        assert (row["batch_size"], row["device"], row["precision"]) == (16, "cpu", "32-true")
    assert rows[0]["ratio"].endswith("x classic") and "ratio" not in rows[1]
    written = read_csv(tmp_path / "benchmark.csv")
    assert [row["setup"] for row in written] == [row["setup"] for row in rows]
    markdown = (tmp_path / "benchmark.md").read_text()
    assert "| images/s |" in markdown and "CPU cores" in markdown.splitlines()[0]
    assert "| resnet18 | classic path |" in capsys.readouterr().out


def test_overhead_and_time_to_accuracy_on_image_folders(image_folder, tmp_path):
    # The tiny folder stands in for CIFAR-10; a 30% target on 4 classes is within reach.
    rows = benchmark.main([
        *TINY, "--models", "mlp", "--no-throughput", "--time-to-52", "--target-52", "0.3",
        "--seed-max-epochs", "2", "--recipe-max-epochs", "2", "--data-dir", str(image_folder),
        "--out", str(tmp_path)])
    setups = [row["setup"] for row in rows]
    assert setups == ["plain PyTorch loop", "Lightning", "seed-style baseline",
                      "our MLP recipe (fast path)"]
    assert rows[1]["ratio"].endswith("% time per step")
    for row in rows[2:]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["time_s"] > 0
        reached = row["accuracy"] >= 0.3
        assert ("reached 30% after epoch" in row["note"]) == reached
        assert ("NOT reached" in row["note"]) == (not reached)
    assert len(read_csv(tmp_path / "benchmark.csv")) == 4


def test_time_to_94_is_refused_on_a_cpu_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--time-to-94", "--device", "cpu", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --time-to-94") and "\n" not in error
    assert not (tmp_path / "benchmark.csv").exists()
