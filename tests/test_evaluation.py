"""Evaluation: confusion matrix, per-class accuracy, flip TTA, ensembles, learning curves."""

import csv
import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from experiments import cifar_mlp, evaluate
from src.benchmark import timing
from src.datamodules import CIFAR10DataModule
from src.evaluation.predictions import (
    accuracy,
    confusion_matrix,
    ensemble_probs,
    per_class_accuracy,
    predict_with_flip,
)
from src.modules import ImageClassifier
from src.modules.tta import flip_tta, mirror_averaged_probs
from tests.conftest import write_image_folder

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def trained_run(image_folder, tmp_path_factory):
    """A 2-epoch MLP run on the tiny folder: (run folder, test results, best checkpoint)."""
    root = tmp_path_factory.mktemp("eval_runs")
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root),
        "--model.hidden_widths", "[16]", "--model.dropout", "0.2", *QUIET])
    run = root / "version_0"
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    return run, results, best


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_confusion_matrix_and_per_class_accuracy_match_a_hand_count():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = torch.tensor([0, 1, 0, 1, 1, 2, 0, 2, 1])
    probs = torch.nn.functional.one_hot(predicted, 3).float() * 0.8 + 0.2 / 3
    confusion = confusion_matrix(probs, labels)
    assert confusion.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    assert confusion.sum(dim=1).tolist() == torch.bincount(labels).tolist()
    assert per_class_accuracy(probs, labels).tolist() == pytest.approx([2 / 3, 1.0, 0.5])


def test_flip_tta_and_ensemble_average_probabilities():
    a, b = torch.rand(5, 3).softmax(-1), torch.rand(5, 3).softmax(-1)
    assert torch.allclose(flip_tta(a, b), (a + b) / 2)
    assert torch.allclose(ensemble_probs([a, b, a]), (2 * a + b) / 3)


class MirrorSensitive(torch.nn.Module):
    """Logits u * A + v * B of a 1x2 image (u, v): the image (1, 0) gets A and its mirror
    image (0, 1) gets B."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.register_buffer("rows", torch.stack([a, b]))  # [2, K]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1).float() @ self.rows  # [B, 1, 1, 2] -> [B, K]


def test_flip_tta_averages_probabilities_not_logits(tmp_path):
    a, b = torch.tensor([10.0, 0.0, 0.0]), torch.tensor([-10.0, 2.0, 0.0])
    mean_probs = (a.softmax(-1) + b.softmax(-1)) / 2  # about [0.50, 0.44, 0.06]
    # The two rules disagree on these logits: class 0 by probabilities, 1 by logits.
    assert mean_probs.argmax() == 0 and ((a + b) / 2).softmax(-1).argmax() == 1
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 1, 2)  # mirror images
    labels = torch.tensor([0, 0])  # plain: right, wrong; TTA by probabilities: both right
    model = ImageClassifier(arch="mlp", num_classes=3, in_channels=1, image_size=2,
                            hidden_widths=(4,), flip_tta=True)
    model.net = MirrorSensitive(a, b)
    model.eval()
    expected = torch.stack([mean_probs, mean_probs])
    with torch.no_grad():
        probs = mirror_averaged_probs(model, images, model(images))
    torch.testing.assert_close(probs, expected)

    # The test step of the module (test/acc_flip_tta).
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    loader = DataLoader(TensorDataset(images, labels), batch_size=2)
    results = trainer.test(model, loader, verbose=False)[0]
    assert results["test/acc"] == 0.5 and results["test/acc_flip_tta"] == 1.0

    # The evaluation entry point's path (Trainer.predict on the prediction split).
    datamodule = L.LightningDataModule.from_datasets(
        predict_dataset=TensorDataset(images, labels), batch_size=2)
    predictions = predict_with_flip(model, datamodule, trainer)
    torch.testing.assert_close(predictions.tta_probs, expected)
    assert accuracy(predictions.tta_probs, labels) == 1.0

    # classify() of uint8 images (an input scaling that leaves them as they are).
    model.hparams.update(input_mean=(0.0,), input_std=(1 / 255,))
    torch.testing.assert_close(model.classify(images.to(torch.uint8), flip_tta=True),
                               expected)
    # The benchmark's time-to-accuracy clock.
    plain, tta = timing.accuracies(model, images.to(torch.uint8), labels, lambda x: x.float(),
                                   torch.device("cpu"), with_flip=True)
    assert (plain, tta) == (0.5, 1.0)


def test_learning_curves_and_test_confusion_are_written_after_a_run(trained_run):
    run, results, _ = trained_run
    assert (run / "learning_curves.png").stat().st_size > 0
    rows = read_csv(run / "learning_curves.csv")
    assert rows[0] == ["epoch", "train_loss", "val_loss", "train_acc", "val_acc"]
    assert [row[0] for row in rows[1:]] == ["0", "1"]
    assert all(float(value) >= 0 for row in rows[1:] for value in row[1:])
    logged_val_acc = [float(r["val/acc"]) for r in csv.DictReader(open(run / "metrics.csv"))
                      if r["val/acc"]]
    assert [float(row[4]) for row in rows[1:]] == pytest.approx(logged_val_acc)

    confusion = [[int(v) for v in row[1:]] for row in read_csv(run / "test_confusion.csv")[1:]]
    assert [sum(row) for row in confusion] == [8, 8, 8, 8]  # test images per class
    correct = sum(confusion[k][k] for k in range(4))
    assert correct / 32 == pytest.approx(results["test/acc"])
    for k, row in enumerate(read_csv(run / "test_per_class.csv")[1:]):
        assert int(row[1]) == 8 and int(row[2]) == confusion[k][k]
        assert float(row[3]) == pytest.approx(confusion[k][k] / 8, abs=1e-4)
    assert (run / "test_confusion.png").stat().st_size > 0


def test_evaluate_one_checkpoint_matches_the_runs_test_and_flip_tta(
        trained_run, image_folder, tmp_path):
    run, results, best = trained_run
    out_dir = tmp_path / "evaluation"
    evaluation = evaluate.main([str(best), "--out_dir", str(out_dir), "--accelerator", "cpu"])
    member = evaluation.members[0]
    # Same checkpoint, same data settings (read from the checkpoint): same test accuracy.
    assert member.accuracy == pytest.approx(results["test/acc"])
    assert evaluation.ensemble is None and evaluation.dataset == "cifar10"

    # Flip TTA = mean of the probabilities of the images and of their mirror images.
    model = ImageClassifier.load_from_checkpoint(best, map_location="cpu").eval()
    datamodule = CIFAR10DataModule(data_dir=str(image_folder))
    datamodule.prepare_data()
    datamodule.setup("test")
    images = datamodule.normalize(datamodule.test_set.images)
    with torch.no_grad():
        probs = model(images).softmax(-1)
        mirrored = model(images.flip(-1)).softmax(-1)
    predictions = member.predictions
    assert torch.equal(predictions.labels, datamodule.test_set.labels)
    assert torch.allclose(predictions.probs, probs, atol=1e-6)
    assert torch.allclose(predictions.flipped_probs, mirrored, atol=1e-6)
    assert not torch.allclose(probs, mirrored, atol=1e-3)  # an MLP is not flip-invariant
    assert torch.allclose(predictions.tta_probs, (probs + mirrored) / 2, atol=1e-6)
    tta_correct = ((probs + mirrored).argmax(-1) == datamodule.test_set.labels).float().mean()
    assert member.tta_accuracy == pytest.approx(float(tta_correct))

    # Confusion matrix rows sum to the class counts; per-class accuracy by hand.
    confusion = [[int(v) for v in row[1:]] for row in read_csv(out_dir / "m1_confusion.csv")[1:]]
    assert [sum(row) for row in confusion] == [8, 8, 8, 8]
    hits = probs.argmax(-1) == datamodule.test_set.labels
    for k, row in enumerate(read_csv(out_dir / "m1_per_class.csv")[1:]):
        by_hand = hits[datamodule.test_set.labels == k].float().mean()
        assert float(row[3]) == pytest.approx(float(by_hand), abs=1e-4)
    saved = json.loads((out_dir / "evaluation.json").read_text())
    assert saved["models"][0]["test_acc_flip_tta"] == pytest.approx(member.tta_accuracy)
    assert "| m1 |" in (out_dir / "evaluation.md").read_text()
    assert (out_dir / "m1_confusion.png").stat().st_size > 0


def test_training_run_reports_flip_tta_separately_and_as_evaluate_computes_it(
        image_folder, tmp_path, capsys):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.default_root_dir", str(tmp_path),
        "--model.hidden_widths", "[16]", "--model.flip_tta", "true",
        # Barely trained, so that some test images are classified differently mirrored.
        "--model.lr", "0.002", "--trainer.max_epochs", "1", *QUIET])
    printed = capsys.readouterr().out
    best = next((tmp_path / "version_0" / "checkpoints").glob("best-*.ckpt"))
    member = evaluate.main([str(best), "--out_dir", str(tmp_path / "evaluation"),
                            "--accelerator", "cpu"]).members[0]
    # The plain figures stay those of the plain images; the TTA figure is logged beside them.
    assert results["test/acc"] == pytest.approx(member.accuracy)
    assert results["test/acc_flip_tta"] == pytest.approx(member.tta_accuracy)
    assert member.tta_accuracy != member.accuracy  # so the two cannot be mixed up unseen
    assert f"Test accuracy: {100 * member.accuracy:.2f}%" in printed
    assert f"Test accuracy with flip TTA: {100 * member.tta_accuracy:.2f}%" in printed


def test_flip_tta_is_off_by_default(trained_run):
    _, results, _ = trained_run
    assert "test/acc_flip_tta" not in results


def test_ensemble_of_two_identical_checkpoints_equals_one_member(trained_run, tmp_path):
    _, _, best = trained_run
    evaluation = evaluate.main([str(best), str(best), "--out_dir", str(tmp_path),
                                "--accelerator", "cpu"])
    first, second = evaluation.members
    ensemble = evaluation.ensemble
    assert torch.allclose(ensemble.predictions.probs, first.predictions.probs)
    assert torch.allclose(ensemble.predictions.tta_probs, second.predictions.tta_probs)
    assert ensemble.accuracy == first.accuracy and ensemble.tta_accuracy == first.tta_accuracy
    markdown = (tmp_path / "evaluation.md").read_text()
    assert "Ensemble gain over each member (test accuracy, percentage points): m1 +0.00, " \
           "m2 +0.00; over the best member +0.00." in markdown
    assert (tmp_path / "ensemble_confusion.csv").is_file()


def check_one_line_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_evaluate_refuses_a_different_split_or_data_set(trained_run, tmp_path, capsys):
    _, _, best = trained_run
    out = tmp_path / "out"
    # Another validation split means other normalization statistics than in training.
    check_one_line_error([str(best), "--out_dir", str(out), "--data.val_fraction", "0.5"],
                         "was trained on a different data split", capsys)
    gray = write_image_folder(tmp_path / "gray", 4, 2, size=28, channels=1)
    check_one_line_error([str(best), "--out_dir", str(out), "--dataset", "fashion_mnist",
                          "--data.data_dir", str(gray)],
                         "expects (classes, channels, size) = (4, 3, 32) but the data give "
                         "(4, 1, 28)", capsys)
    assert not out.exists()


def test_evaluate_missing_checkpoint_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(tmp_path / "nope.ckpt")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == \
        f"error: checkpoint {tmp_path}/nope.ckpt does not exist"
