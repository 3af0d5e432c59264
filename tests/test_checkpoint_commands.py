"""Lightning's subcommands on a checkpoint (validate, test, predict), the library loader
that knows its classes and input scaling, and checkpoints that are data, never code."""

import csv
import os

import pytest
import torch

from experiments import cifar_mlp, evaluate
from src.datamodules import CIFAR10DataModule
from src.modules import ImageClassifier
from src.runs.checkpoints import CheckpointError
from tests.conftest import CLASS_NAMES

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory):
    """A tiny MLP run: its best checkpoint and the results its own final test printed."""
    run = tmp_path_factory.mktemp("cmd") / "run"
    results = cifar_mlp.main(["--data.data_dir", str(image_folder), "--run_dir", str(run),
                              "--model.hidden_widths", "[16]", "--trainer.max_epochs", "3",
                              *QUIET])
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    return best, results


def last_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_test_subcommand_reproduces_the_runs_own_test(trained, capsys):
    best, results = trained
    metrics = cifar_mlp.main(["test", "--ckpt_path", str(best), *QUIET[:2]])
    assert metrics["test/acc"] == pytest.approx(results["test/acc"], abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(results["test/loss"], rel=1e-5)
    line = last_line(capsys)
    assert line.startswith(f"Test accuracy: {100 * results['test/acc']:.2f}% (test loss ")
    assert f"checkpoint {best}" in line and "val/acc" in line


def test_validate_subcommand_gives_the_checkpoints_validation_accuracy(trained, capsys):
    best, _ = trained
    saved = torch.load(best, map_location="cpu", weights_only=True)
    score = next(state["best_model_score"] for key, state in saved["callbacks"].items()
                 if key.startswith("ModelCheckpoint"))
    metrics = cifar_mlp.main(["validate", "--ckpt_path", str(best), *QUIET[:2]])
    assert metrics["val/acc"] == pytest.approx(float(score), abs=1e-6)
    assert last_line(capsys).startswith("Validation accuracy: ")


def test_predict_classifies_a_folder_like_the_test_split(trained, image_folder, capsys):
    best, _ = trained
    out = best.parents[1] / "predictions_here"
    path = cifar_mlp.main(["predict", "--ckpt_path", str(best), "--data.predict_dir",
                           str(image_folder / "test"), "--out_dir", str(out), "--top_k", "2",
                           *QUIET[:2]])
    assert path == out / "predictions.csv"
    assert last_line(capsys) == f"Predictions for 32 images: {path}"
    with path.open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 32 and rows[0]["file"] == "class0/class0_0000.png"
    # The same images through the checkpoint's own normalization, by hand.
    model = ImageClassifier.load_from_checkpoint(best).eval()
    data = CIFAR10DataModule(data_dir=str(image_folder))
    data.setup("test")
    with torch.no_grad():
        expected = model(data.normalize(data.test_set.images)).softmax(dim=-1)
    for row, probs in zip(rows, expected, strict=True):
        assert row["predicted_class"] == CLASS_NAMES[probs.argmax()]
        assert float(row["probability"]) == pytest.approx(probs.max().item(), abs=1e-5)
        assert len(row["top_2"].split("; ")) == 2


def test_predict_resizes_and_converts_images_of_another_size(trained, tmp_path):
    from PIL import Image

    best, _ = trained
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.new("L", (64, 48), color=200).save(folder / "gray_64x48.png")
    Image.new("RGB", (32, 32), color=(10, 200, 30)).save(folder / "rgb.jpg")
    path = cifar_mlp.main(["predict", "--ckpt_path", str(best), "--data.predict_dir",
                           str(folder), *QUIET[:2]])
    rows = list(csv.DictReader(path.open()))
    assert [row["file"] for row in rows] == ["gray_64x48.png", "rgb.jpg"]
    assert all(row["predicted_class"] in CLASS_NAMES for row in rows)


def test_predict_names_an_image_it_cannot_decode_in_one_line(trained, tmp_path, capsys):
    best, _ = trained
    folder = tmp_path / "mine"
    folder.mkdir()
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(SystemExit) as exit_:
        cifar_mlp.main(["predict", "--ckpt_path", str(best), "--data.predict_dir",
                        str(folder), *QUIET[:2]])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot decode image {broken}: ")
    assert err.endswith("; replace or delete the file") and "\n" not in err


def test_loaded_checkpoint_knows_its_classes_and_input_scaling(trained, image_folder):
    best, _ = trained
    model = ImageClassifier.load_from_checkpoint(best)
    data = CIFAR10DataModule(data_dir=str(image_folder))
    data.setup("fit")
    assert model.hparams.class_names == tuple(CLASS_NAMES)
    assert torch.allclose(torch.tensor(model.hparams.input_mean), data.mean)
    assert torch.allclose(torch.tensor(model.hparams.input_std), data.std)
    images = data.test_set.images[:5]  # raw uint8 pixels, as a user has them
    model.eval()
    with torch.no_grad():
        expected = model(data.normalize(images)).softmax(dim=-1)
    assert torch.allclose(model.classify(images), expected, atol=1e-6)


def test_a_checkpoint_subcommand_needs_the_checkpoint(capsys):
    with pytest.raises(SystemExit) as exit_:
        cifar_mlp.main(["test"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: missing --ckpt_path (see python -m experiments.cifar_mlp test --help)")


# -- checkpoints are data, never code ---------------------------------------------------


class RunsCode:
    """Unpickling this runs a shell command (as a malicious checkpoint would)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": RunsCode(marker)}, path)
    return path, marker


def refused(capsys, marker, command) -> str:
    with pytest.raises(SystemExit) as exit_:
        command()
    assert exit_.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "holds pickled Python objects" in line
    assert not marker.exists()  # none of it ran
    return line


@pytest.mark.parametrize("subcommand", ["test", "validate", "predict"])
def test_subcommands_refuse_a_checkpoint_that_would_run_code(malicious, capsys, subcommand,
                                                             image_folder):
    path, marker = malicious
    extra = ["--data.predict_dir", str(image_folder / "test")] if subcommand == "predict" else []
    refused(capsys, marker, lambda: cifar_mlp.main([subcommand, "--ckpt_path", str(path),
                                                    *extra]))


def test_evaluate_refuses_a_checkpoint_that_would_run_code(malicious, capsys):
    path, marker = malicious
    refused(capsys, marker, lambda: evaluate.main([str(path)]))


def test_fit_from_a_checkpoint_refuses_one_that_would_run_code(malicious, capsys, image_folder,
                                                               tmp_path):
    path, marker = malicious
    refused(capsys, marker, lambda: cifar_mlp.main([
        "fit", "--ckpt_path", str(path), "--data.data_dir", str(image_folder),
        "--model.hidden_widths", "[16]", "--trainer.default_root_dir", str(tmp_path / "r"),
        *QUIET]))


def test_resume_refuses_a_last_checkpoint_that_would_run_code(trained, malicious, capsys,
                                                              image_folder):
    best, _ = trained
    path, marker = malicious
    run = best.parents[1]
    last = run / "checkpoints" / "last.ckpt"
    original = last.read_bytes()
    last.write_bytes(path.read_bytes())
    try:
        refused(capsys, marker, lambda: cifar_mlp.main([
            "--config", str(run / "config.yaml"), "--resume", "true", *QUIET]))
    finally:
        last.write_bytes(original)


def test_library_loader_refuses_a_checkpoint_that_would_run_code(malicious):
    path, marker = malicious
    with pytest.raises(CheckpointError, match="holds pickled Python objects") as error:
        ImageClassifier.load_from_checkpoint(path)
    assert "\n" not in str(error.value) and not marker.exists()
    with pytest.raises(CheckpointError, match="only read weights-only"):
        ImageClassifier.load_from_checkpoint(path, weights_only=False)
    assert not marker.exists()
