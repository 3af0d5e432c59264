"""Training losses: values against torch / hand computation, class weights, training steps."""

import copy
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from experiments import cifar_mlp
from src.core.errors import ConfigError
from src.modules import ImageClassifier
from src.modules.losses import LOSSES, inverse_frequency_weights
from tests.checks import assert_tested_checkpoint, best_checkpoint
from tests.factories import make_loss


def tiny_classifier(**overrides) -> ImageClassifier:
    settings = dict(arch="mlp", num_classes=2, in_channels=1, image_size=4, hidden_widths=(8,),
                    norm="none", optimizer="sgd", lr=0.5, scheduler="constant")
    settings.update(overrides)
    return ImageClassifier(**settings)


def reference_loss(name: str, logits: torch.Tensor, targets: torch.Tensor,
                   label_smoothing: float) -> torch.Tensor:
    """Each training loss written out from its definition (see src/modules/losses.py):
    targets smoothed as (1 - eps) t + eps / K, then torch's functional form."""
    num_classes = logits.shape[1]
    rows = targets.float() if targets.ndim == 2 else F.one_hot(targets, num_classes).float()
    smoothed = (1 - label_smoothing) * rows + label_smoothing / num_classes
    if name == "cross_entropy":
        return -(smoothed * logits.log_softmax(dim=-1)).sum(dim=-1).mean()
    if name == "bce":  # on the margin logit_1 - logit_0, target P(class 1)
        return F.binary_cross_entropy_with_logits(logits[:, 1] - logits[:, 0], smoothed[:, 1])
    if name == "mse":
        return F.mse_loss(logits.softmax(dim=-1), smoothed)
    if name == "l1":
        return F.l1_loss(logits.softmax(dim=-1), smoothed)
    raise AssertionError(name)


@pytest.mark.parametrize("soft_targets", [False, True], ids=["int_targets", "soft_targets"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_runs_a_training_step(name, soft_targets):
    torch.manual_seed(0)
    images = torch.randn(8, 1, 4, 4)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    targets = labels
    if soft_targets:  # label-mixed rows, as mixup/cutmix produce them
        lam = torch.rand(8, 1)
        targets = lam * F.one_hot(labels, 2) + (1 - lam) * F.one_hot(labels.flip(0), 2)
    model = tiny_classifier(loss=name, label_smoothing=0.1)
    before = copy.deepcopy(model)
    trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, DataLoader(TensorDataset(images, targets), batch_size=8))
    # The logged objective is the named loss of the first batch, before the update.
    with torch.no_grad():
        expected = reference_loss(name, before(images), targets, label_smoothing=0.1)
    assert torch.isfinite(expected)
    assert trainer.callback_metrics["train/loss_step"] == pytest.approx(expected.item(), rel=1e-5)
    for (_, old), (_, new) in zip(before.named_parameters(), model.named_parameters(),
                                  strict=True):
        assert not torch.equal(old, new)


@pytest.mark.parametrize("soft_targets", [False, True], ids=["int_targets", "soft_targets"])
@pytest.mark.parametrize("name", ["mse", "l1"])
def test_mse_and_l1_with_label_smoothing_use_the_smoothed_targets(name, soft_targets):
    torch.manual_seed(0)
    num_classes, eps = 5, 0.3
    logits = 3 * torch.randn(6, num_classes)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    rows = F.one_hot(labels, num_classes).float()
    if soft_targets:
        rows = 0.7 * rows + 0.3 * F.one_hot(labels.roll(1), num_classes).float()
    # Label smoothing: t' = (1 - eps) t + eps / K, for every entry of the row.
    smoothed = (1 - eps) * rows + eps / num_classes
    error = logits.softmax(dim=-1) - smoothed
    expected = error.square().mean() if name == "mse" else error.abs().mean()
    targets = rows if soft_targets else labels
    loss = make_loss(name, num_classes, label_smoothing=eps)(logits, targets)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    unsmoothed = make_loss(name, num_classes)(logits, targets)
    assert abs(unsmoothed.item() - loss.item()) > 1e-3  # smoothing changes the value here


# Training losses whose value differs from the plain cross-entropy on the same logits.
TRAINING_LOSSES = {
    "smoothed_ce": dict(loss="cross_entropy", label_smoothing=0.2),
    "weighted_ce": dict(loss="cross_entropy", class_weights=[1.0, 4.0]),
    "mse": dict(loss="mse"),
    "smoothed_l1": dict(loss="l1", label_smoothing=0.1),
    "weighted_bce": dict(loss="bce", class_weights=[1.0, 3.0]),
}


@pytest.mark.parametrize("settings", list(TRAINING_LOSSES.values()), ids=list(TRAINING_LOSSES))
def test_validation_and_test_loss_are_plain_cross_entropy_whatever_the_training_loss(settings):
    torch.manual_seed(0)
    model = tiny_classifier(**settings)
    with torch.no_grad():
        model.net.head.weight.mul_(20)  # confident logits, where the losses differ most
    images = torch.randn(13, 1, 4, 4)
    labels = torch.tensor([0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0])
    model.eval()
    with torch.no_grad():
        logits = model(images)
    # Torch's cross-entropy of every image, averaged over the 13 images.
    expected = F.cross_entropy(logits, labels).item()
    assert abs(model.loss(logits, labels).item() - expected) > 0.01  # not the same number
    loader = DataLoader(TensorDataset(images, labels), batch_size=5)  # batches of 5, 5, 3
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)
    validated = trainer.validate(model, loader, verbose=False)[0]
    tested = trainer.test(model, loader, verbose=False)[0]
    assert validated["val/loss"] == pytest.approx(expected, rel=1e-5)
    assert tested["test/loss"] == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_matches_torch_with_weights_and_smoothing():
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 4), torch.tensor([0, 1, 2, 3, 3, 1, 0])
    weights = [1.0, 2.0, 0.5, 3.0]
    loss = make_loss("cross_entropy", 4, label_smoothing=0.2, class_weights=weights)
    expected = F.cross_entropy(logits, labels, weight=torch.tensor(weights), label_smoothing=0.2)
    assert loss(logits, labels) == pytest.approx(expected.item(), rel=1e-6)
    # One-hot probability rows give exactly the loss of their indices.
    assert loss(logits, F.one_hot(labels, 4).float()) == pytest.approx(expected.item(), rel=1e-6)


def test_cross_entropy_on_soft_targets_is_the_expected_negative_log_likelihood():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    log_p = logits.log_softmax(dim=-1)
    expected = -(targets * log_p).sum() / 2
    assert make_loss("cross_entropy", 3)(logits, targets) == pytest.approx(expected.item())


def test_inverse_frequency_weights_of_an_imbalanced_label_set():
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    weights = inverse_frequency_weights(labels, 3)
    # w_c = N / (K * n_c) with N = 10, K = 3.
    assert weights.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    assert weights[labels].mean() == pytest.approx(1.0)  # mean weight per image is 1


def test_inverse_frequency_weights_refuse_an_empty_class():
    with pytest.raises(Exception, match="'dog' has no training images"):
        inverse_frequency_weights(torch.tensor([0, 0, 1]), 3, ["cat", "bird", "dog"])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_bce_and_weighted_bce_match_hand_values_and_torch():
    logits = torch.tensor([[0.2, 1.0], [0.5, -0.3], [0.0, 0.0]])
    labels = torch.tensor([1, 0, 1])
    margin = logits[:, 1] - logits[:, 0]  # [0.8, -0.8, 0.0]
    # -log sigmoid(z) = softplus(-z) for y = 1; -log(1 - sigmoid(z)) = softplus(z) for y = 0.
    plain = (softplus(-0.8) + softplus(-0.8) + math.log(2)) / 3
    assert make_loss("bce", 2)(logits, labels) == pytest.approx(plain, rel=1e-6)
    assert plain == pytest.approx(F.binary_cross_entropy_with_logits(margin, labels.float()).item())
    # Class weights [2, 6] -> pos_weight 3: the positive terms count three times.
    weighted = (3 * softplus(-0.8) + softplus(-0.8) + 3 * math.log(2)) / 3
    loss = make_loss("bce", 2, class_weights=[2.0, 6.0])
    assert loss(logits, labels) == pytest.approx(weighted, rel=1e-6)
    torch_value = F.binary_cross_entropy_with_logits(margin, labels.float(),
                                                     pos_weight=torch.tensor(3.0))
    assert weighted == pytest.approx(torch_value.item(), rel=1e-6)


def test_unweighted_bce_equals_two_class_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 2), torch.randint(0, 2, (16,))
    assert make_loss("bce", 2)(logits, labels) == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-5)


def test_mse_and_l1_act_on_softmax_probabilities_against_one_hot_rows():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # softmax: [.25, .75], [.5, .5]
    labels = torch.tensor([0, 1])
    # Squared errors: (.75^2 + .75^2) + (.5^2 + .5^2) over B * K = 4 entries.
    assert make_loss("mse", 2)(logits, labels) == pytest.approx((1.125 + 0.5) / 4)
    assert make_loss("l1", 2)(logits, labels) == pytest.approx((1.5 + 1.0) / 4)
    # Soft targets and label smoothing act on the target rows: eps=0.5 turns [1, 0] into
    # [.75, .25], which the first row's [.25, .75] misses by .5 per entry.
    smoothed = make_loss("l1", 2, label_smoothing=0.5)(logits[:1], labels[:1])
    assert smoothed == pytest.approx(0.5)
    soft = make_loss("mse", 2)(logits[:1], torch.tensor([[0.25, 0.75]]))
    assert soft == pytest.approx(0.0, abs=1e-7)


def test_unknown_loss_fails_with_one_line_listing_the_names():
    with pytest.raises(ConfigError) as error:
        tiny_classifier(loss="hinge")
    message = str(error.value)
    assert message == "unknown loss 'hinge'; choose one of: bce, cross_entropy, l1, mse"


@pytest.mark.parametrize(("settings", "message"), [
    (dict(loss="bce", num_classes=3), "loss 'bce' needs exactly 2 classes"),
    (dict(loss="mse", class_weights=[1.0, 2.0]),
     "class_weights applies to loss cross_entropy, bce only, and loss is 'mse'"),
    (dict(class_weights=[1.0, 2.0, 3.0]), "class_weights has 3 values but there are 2"),
    (dict(class_weights=[1.0, 0.0]), r"class_weights\[1\]=0.0 is out of range"),
    (dict(class_weights="balanced"), "give a list of 2 numbers, 'auto'"),
    (dict(label_smoothing=1.0), "label_smoothing=1.0 is out of range"),
])
def test_bad_loss_settings_fail_at_construction(settings, message):
    with pytest.raises(ConfigError, match=message):
        tiny_classifier(**settings)


def test_auto_class_weights_refuse_to_run_before_they_are_computed():
    model = tiny_classifier(class_weights="auto")
    with pytest.raises(RuntimeError, match="set_class_weights"):
        model.loss(torch.zeros(2, 2), torch.tensor([0, 1]))


def test_cli_two_class_imbalanced_bce_with_auto_weights(image_folder, tmp_path):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--data.drop_last", "true",  # 33 training images: no batch of 1 for BatchNorm
        "--data.classes", "[class0,class1]", "--data.imbalance_ratio", "0.5",
        "--model.loss", "bce", "--model.class_weights", "auto",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[32]",
    ])
    best = best_checkpoint(tmp_path / "runs" / "version_0")
    # The test figures are those of the best checkpoint on the two classes' test images.
    accuracy = assert_tested_checkpoint(results, best, image_folder,
                                        classes=["class0", "class1"])
    assert accuracy >= 0.75  # two well separated classes (chance: 0.5)
    model = ImageClassifier.load_from_checkpoint(best)
    assert model.hparams.num_classes == 2  # linked from the class subset
    # Training pool: class0 24, class1 12 images; val_fraction 0.1 holds out 2 and 1,
    # so the training split has 22 and 11: w = 33 / (2 * n_c).
    assert model.criterion.class_weights.tolist() == pytest.approx([0.75, 1.5])
    assert model.criterion.awaiting_class_weights is False
