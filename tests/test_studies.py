"""The lectures' studies: every command runs end to end on tiny synthetic data, a diverged
variant is a result, and bad input stops with one line."""

import csv
import importlib
from pathlib import Path

import pytest
import yaml
from conftest import write_image_folder

from experiments import RECIPES
from src.cli import study as cli
from src.modules import ImageClassifier
from src.studies.runner import model_values
from src.studies.study import Budget, Study, Variant
from tests.checks import (
    best_checkpoint,
    checkpoint_best_score,
    ctrl_c_when_starting,
    evaluate_by_hand,
    read_image_folder,
)

# Tiny networks and runs: the flags after `--` come last and override the studies' own.
TINY = ["--model.hidden_widths", "[16]", "--model.resnet_widths", "[8,8,8,8]",
        "--trainer.max_epochs", "1", "--data.subset_per_class", "10",
        "--trainer.limit_test_batches", "1",
        # The runs' own figures are tested elsewhere; here they would only cost time.
        "--learning_curves.enabled", "false", "--test_confusion.enabled", "false"]
# (module, two of its variants); the slow test runs each study's other variants.
STUDIES = {
    "study_learning_rate": ["lr 0.1 (high)", "lr 0.0003 (low)"],
    "study_batch_size": ["batch 16", "batch 1024"],
    "study_normalization": ["ResNet18 group", "MLP layer"],
    "study_optimizer": ["Nesterov lr 0.01", "LAMB lr 0.003"],
    "study_lr_schedule": ["one-cycle", "reduce on plateau"],
    "study_init_activation": ["normal std 0.01 + tanh", "kaiming + relu"],
    "study_regularization": ["+ more data", "all together"],
    "study_data_normalization": ["none (0..255)", "standardize (train mean/std)"],
    "study_loss": ["cross-entropy", "MSE"],
    "fashion_mnist_homework": ["baseline",
                               "+ GELU, label smoothing 0.1, dropout 0.1 (everything)"],
}


@pytest.fixture(scope="module")
def gray_folder(tmp_path_factory):
    """FashionMNIST-shaped: 1 channel, 28x28."""
    return write_image_folder(tmp_path_factory.mktemp("gray"), size=28, channels=1)


def data_dir(name: str, image_folder, gray_folder) -> str:
    return str(gray_folder if name == "fashion_mnist_homework" else image_folder)


def read_table(out_dir) -> list[dict[str, str]]:
    with (out_dir / "results.csv").open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("name", list(STUDIES))
def test_study_runs_its_variants_and_writes_table_and_plot(name, image_folder, gray_folder,
                                                           tmp_path):
    module = importlib.import_module(f"experiments.{name}")
    labels = STUDIES[name]
    out = tmp_path / "out"
    results = module.main(["--out_dir", str(out), "--isolation", "inprocess", "--variants", *labels,
                           "--", "--data.data_dir", data_dir(name, image_folder, gray_folder),
                           *TINY])
    assert [r.variant.label for r in results] == labels
    rows = read_table(out)
    assert [row["variant"] for row in rows] == labels
    assert all(row["outcome"] == "finished" for row in rows)
    test_images = read_image_folder(data_dir(name, image_folder, gray_folder))
    for result, row in zip(results, rows, strict=True):
        # "best val acc" is the score of the checkpoint the run kept, as that file records
        # it, and "test acc" that checkpoint's accuracy on the test images, by hand.
        run_dir = next(Path(result.trial.run_dir).rglob("checkpoints")).parent
        best = best_checkpoint(run_dir)
        assert row["best val acc"] == f"{checkpoint_best_score(best):.4f}"
        if "test acc" in row:
            model = ImageClassifier.load_from_checkpoint(best, map_location="cpu",
                                                         weights_only=True)
            accuracy, _ = evaluate_by_hand(model, *test_images)
            assert row["test acc"] == f"{accuracy:.4f}"
    text = (out / "results.md").read_text()
    # The command as anyone can run it: the data by environment variable, no machine paths.
    data = "FASHION_MNIST_DIR=path/to/fashion_mnist" if name == "fashion_mnist_homework" \
        else "CIFAR10_DIR=path/to/cifar10"
    assert f"- Command: `{data} python -m experiments.{name} --isolation inprocess" in text
    assert str(tmp_path) not in text and module.STUDY.question in text
    assert all(f"| {label} |" in text for label in labels)
    assert (out / "results.png").stat().st_size > 10_000
    # Each variant ran with its own flags, in its own folder.
    for result in results:
        config = yaml.safe_load(next(result.trial.run_dir.rglob("config.yaml")).read_text())
        assert config["wandb"]["name"] == result.variant.label
        assert config["wandb"]["group"] == out.name
        # A later step may set a flag again (the homework's lr): the last value wins.
        final = dict(zip(result.variant.flags[::2], result.variant.flags[1::2], strict=True))
        for flag, value in final.items():
            section, key = flag.removeprefix("--").split(".", 1)
            if f"--{section}.{key}" not in TINY:
                assert str(config[section][key]).lower().replace(" ", "") == \
                    value.lower().replace(" ", "") or yaml.safe_load(value) == \
                    config[section][key]


def test_study_specific_columns_come_from_the_runs(image_folder, tmp_path):
    from experiments import study_batch_size, study_init_activation

    out = tmp_path / "batch"
    study_batch_size.main(["--out_dir", str(out), "--isolation", "inprocess", "--variants",
                           "batch 16", "batch 64", "--", "--data.data_dir", str(image_folder),
                           *TINY])
    rows = read_table(out)
    # 40 training images: 3 batches of 16 per epoch, 1 of 64; one epoch.
    assert [row["steps"] for row in rows] == ["3", "1"]
    assert all(float(row["s/epoch"]) > 0 for row in rows)  # EpochTimer is on by default

    out = tmp_path / "init"
    study_init_activation.main(["--out_dir", str(out), "--isolation", "inprocess", "--variants",
                                "normal std 0.01 + relu", "normal std 1.0 + tanh", "--",
                                "--data.data_dir", str(image_folder), *TINY,
                                "--model.hidden_widths", "[64,64,64]"])
    small, large = read_table(out)
    # A std-0.01 init shrinks the signal layer after layer; std 1.0 saturates tanh.
    assert float(small["act std, last layer @init"]) < \
        0.2 * float(small["act std, first layer @init"])
    assert float(large["dead/saturated, last layer @init"]) > 0.5


EXPLODING = Study(
    name="study_test", title="test", question="Does a diverged run stay a result?",
    base="cifar_mlp",
    common_flags=("--model.hidden_widths", "[16]", "--model.norm", "none",
                  "--model.optimizer", "sgd", "--model.scheduler", "constant",
                  "--trainer.log_every_n_steps", "1", "--data.batch_size", "16"),
    variants=(Variant("explodes", ("--model.lr", "1e12")), Variant("fine", ("--model.lr", "0.01"))),
    budgets={"quick": Budget(("--trainer.max_epochs", "1"), "1 epoch"),
             "full": Budget(("--trainer.max_epochs", "2"), "2 epochs")},
)


def test_a_diverged_variant_is_a_result_not_a_failure(image_folder, tmp_path):
    out = tmp_path / "out"
    results = cli.main(EXPLODING, RECIPES, ["--out_dir", str(out), "--isolation", "inprocess", "--",
                                   "--data.data_dir", str(image_folder)])
    exploded, fine = results
    assert exploded.diverged_at_step is not None and exploded.diverged_at_step >= 0
    assert fine.diverged_at_step is None and fine.trial.status == "done"
    rows = read_table(out)
    assert rows[0]["outcome"] == f"diverged at step {exploded.diverged_at_step}"
    assert rows[1]["outcome"] == "finished" and rows[1]["best val acc"]


def test_an_interrupted_study_keeps_the_table_of_the_runs_it_finished(
        image_folder, tmp_path, monkeypatch, capsys):
    from src.studies import runner
    monkeypatch.setattr(runner, "run_or_read_trial",
                        ctrl_c_when_starting("fine", runner.run_or_read_trial))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(EXPLODING, RECIPES, ["--out_dir", str(out), "--isolation", "inprocess", "--",
                             "--data.data_dir", str(image_folder)])
    assert exit_info.value.code == 130
    assert [row["variant"] for row in read_table(out)] == ["explodes"]
    assert "| explodes |" in (out / "results.md").read_text()
    assert (out / "results.png").is_file()

    # --resume: the finished (diverged) run is read back, not rerun; the rest runs.
    monkeypatch.undo()
    explodes_record = (out / "explodes" / "trial.json").read_text()
    results = cli.main(EXPLODING, RECIPES, ["--out_dir", str(out), "--isolation", "inprocess",
                                            "--resume", "--", "--data.data_dir", str(image_folder)])
    assert [r.trial.earlier for r in results] == [True, False]
    assert (out / "explodes" / "trial.json").read_text() == explodes_record
    assert results[0].diverged_at_step is not None  # read back from its own output.log
    assert [row["outcome"] for row in read_table(out)] == [
        f"diverged at step {results[0].diverged_at_step}", "finished"]
    assert "which read back 1 finished runs of an earlier one and continued 0 from its last " \
        "checkpoint" in (out / "results.md").read_text()


def test_a_first_run_that_cannot_start_stops_the_study_in_one_line(image_folder, tmp_path,
                                                                   capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        cli.main(EXPLODING, RECIPES, ["--out_dir", str(out), "--isolation", "inprocess", "--",
                             "--data.data_dir", str(image_folder), "--model.norm", "bogus"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: the first run could not start (unknown norm")
    assert "\n" not in error
    # The second never ran: one run folder, beside the settings record --resume reads.
    assert sorted(path.name for path in out.iterdir()) == ["explodes", "study_settings.json"]


@pytest.mark.parametrize("argv, message", [
    (["--budget", "huge"], "error: argument --budget: invalid choice: 'huge'"),
    (["--variants", "lr 5"],
     "error: unknown study_learning_rate variant 'lr 5'; choose from: 'lr 1.0"),
    (["--isolation", "thread"], "error: argument --isolation: invalid choice: 'thread'"),
])
def test_bad_study_flags_fail_in_one_line(argv, message, tmp_path, capsys):
    from experiments import study_learning_rate

    with pytest.raises(SystemExit) as exit_:
        study_learning_rate.main([*argv, "--out_dir", str(tmp_path / "out")])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(message) and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_output_folder_with_files_is_refused(tmp_path, capsys):
    from experiments import study_loss

    (tmp_path / "old.txt").write_text("earlier results")
    with pytest.raises(SystemExit) as exit_:
        study_loss.main(["--out_dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == \
        f"error: {tmp_path} already holds files; choose a new --out_dir folder"


def test_homework_without_fashion_mnist_stops_with_the_datamodule_error(tmp_path, capsys):
    from experiments import fashion_mnist_homework

    with pytest.raises(SystemExit) as exit_:
        fashion_mnist_homework.main(["--out_dir", str(tmp_path / "out"), "--isolation", "inprocess",
                                     "--", "--data.data_dir", str(tmp_path / "nothing"),
                                     "--data.download", "false"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: the first run could not start (FashionMNIST not found in")
    assert "\n" not in error


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STUDIES))
def test_every_other_variant_of_every_study_runs(name, image_folder, gray_folder, tmp_path):
    # The two variants of STUDIES[name] ran in the test above; these are all the others.
    module = importlib.import_module(f"experiments.{name}")
    others = [v.label for v in module.STUDY.variants if v.label not in STUDIES[name]]
    assert len(others) == len(module.STUDY.variants) - 2
    out = tmp_path / "out"
    module.main(["--out_dir", str(out), "--isolation", "inprocess", "--variants", *others, "--",
                 "--data.data_dir", data_dir(name, image_folder, gray_folder), *TINY,
                 "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"])
    rows = read_table(out)
    assert [row["variant"] for row in rows] == others
    assert all(row["outcome"] == "finished" for row in rows)


def test_the_homeworks_last_step_is_the_fashion_mnist_recipe():
    from experiments import fashion_mnist_homework
    study = fashion_mnist_homework.STUDY
    recipe_path = RECIPES.config("fashion_mnist_mlp")
    recipe = yaml.safe_load(recipe_path.read_text())
    flags = [*study.common_flags, *study.variants[-1].flags]
    last = model_values(recipe_path, flags)
    for name in ("hidden_widths", "act", "norm", "dropout", "label_smoothing", "optimizer", "lr",
                 "weight_decay", "scheduler", "onecycle_pct_start"):
        assert last[name] == recipe["model"][name], name
    batch = [value for flag, value in zip(flags[::2], flags[1::2], strict=True)
             if flag == "--data.batch_size"]
    assert int(batch[-1]) == recipe["data"]["batch_size"]
