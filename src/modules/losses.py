"""Training losses: one registry, name -> loss, used by ImageClassifier.

Every loss takes the network's logits [B, K] and targets that are either class indices
[B] (int64) or class probabilities [B, K] (float, rows summing to 1: one-hot, label-mixed
by mixup/cutmix, ...). Integer targets are turned into one-hot rows first, so both kinds
go through the same formula and a one-hot row gives exactly the loss of its index.

- cross_entropy: `F.cross_entropy` with probability targets, optional per-class weights
  and label smoothing. With integer targets it equals torch's own
  `F.cross_entropy(logits, index, weight, label_smoothing)`, including torch's weighted
  mean (divided by the summed weight of the targets, not by B); for soft targets the
  divisor is sum_n sum_c w_c t_nc, the same rule extended.
- bce: binary cross-entropy for two classes. The network keeps its two outputs; BCE acts
  on the margin z = logit_1 - logit_0, so sigmoid(z) is exactly the softmax probability
  of class 1 that accuracy and prediction already use, and the plain cross-entropy
  logged on val/test equals the unweighted BCE. Class weights [w0, w1] become torch's
  `pos_weight = w1 / w0` (weighted BCE; only the ratio matters, and `class_weights:
  auto` gives n_0 / n_1). Unweighted, it is the same objective as two-class
  cross-entropy: same value, same gradients.
- mse, l1: mean squared / mean absolute error between the softmax probabilities and the
  one-hot (or soft) target rows, averaged over all B * K entries as torch's `mse_loss` /
  `l1_loss` do. They act on probabilities, not on raw logits: outputs and targets then
  live in the same space (the simplex), and the loss saturates when the softmax does,
  which is what the MSE-versus-cross-entropy comparison of the lectures is about
  (a confidently wrong softmax output gets a vanishing gradient under MSE, a large one
  under cross-entropy).

Label smoothing mixes every target row with the uniform distribution,
t' = (1 - eps) t + eps / K, for every loss (for cross_entropy through torch's own
`label_smoothing` argument). Losses are computed in float32 whatever the precision of
the logits.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from src.core.errors import ConfigError, DataError
from src.core.settings import check_settings, setting, settings_group

AUTO_CLASS_WEIGHTS = "auto"


def as_probabilities(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices [B] or probabilities [B, K] -> float32 probabilities [B, K]."""
    if targets.ndim == 1:
        return F.one_hot(targets, num_classes).float()
    if targets.ndim != 2 or targets.shape[1] != num_classes:
        raise ValueError(f"targets must be class indices [B] or probabilities [B, {num_classes}]"
                         f", got shape {list(targets.shape)}")
    return targets.float()


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices [B] from indices [B] or probabilities [B, K] (the most likely class)."""
    return targets.argmax(dim=-1) if targets.ndim == 2 else targets


def smooth(probs: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Mix target rows [B, K] with the uniform distribution: (1 - eps) t + eps / K."""
    if label_smoothing == 0:
        return probs
    return probs * (1 - label_smoothing) + label_smoothing / probs.shape[1]


def inverse_frequency_weights(labels: torch.Tensor, num_classes: int,
                              class_names: Sequence[str] | None = None) -> torch.Tensor:
    """w_c = N / (K * n_c): rarer classes weigh more, and the mean weight per image is 1.

    labels: [N] int64 training labels. Returns float32 [K].
    """
    counts = torch.bincount(labels.cpu(), minlength=num_classes)[:num_classes]
    if (counts == 0).any():
        empty = int((counts == 0).nonzero()[0])
        name = class_names[empty] if class_names else str(empty)
        raise DataError(f"class {name!r} has no training images, so class_weights='auto' "
                        f"cannot weigh it; give the weights as a list or change the data")
    return (counts.sum() / (num_classes * counts)).float()


class ClassificationLoss(ABC):
    """Base of the losses: holds K, label smoothing and the class weights (or None).

    The weights are a plain tensor, not a registered buffer, so weight averaging (which
    averages or swaps every buffer of the module) never touches them; ImageClassifier
    stores them in its checkpoints itself. With `awaiting_class_weights` the loss refuses
    to run until `set_class_weights` was called (class_weights="auto" before fitting).
    """

    uses_class_weights = True

    def __init__(self, num_classes: int, label_smoothing: float = 0.0,
                 class_weights: torch.Tensor | None = None,
                 awaiting_class_weights: bool = False):
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.class_weights = class_weights  # [K] float32, or None
        self.awaiting_class_weights = awaiting_class_weights

    def set_class_weights(self, class_weights: torch.Tensor) -> None:
        self.class_weights = class_weights.float()
        self.awaiting_class_weights = False

    def weights_on(self, device: torch.device) -> torch.Tensor | None:
        if self.class_weights is not None and self.class_weights.device != device:
            self.class_weights = self.class_weights.to(device)  # once, not every step
        return self.class_weights

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """logits [B, K], targets [B] int or [B, K] probabilities -> scalar loss."""
        if self.awaiting_class_weights:
            raise RuntimeError("class_weights='auto' are computed from the training labels "
                               "when fitting starts; call set_class_weights() first")
        return self.compute(logits.float(), as_probabilities(targets, self.num_classes))

    @abstractmethod
    def compute(self, logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """logits [B, K] float32, probs [B, K] float32 target rows -> scalar loss."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(label_smoothing={self.label_smoothing}, "
                f"class_weights={self.class_weights})")


class CrossEntropy(ClassificationLoss):
    def compute(self, logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        weight = self.weights_on(logits.device)
        if weight is None:
            return F.cross_entropy(logits, probs, label_smoothing=self.label_smoothing)
        total = F.cross_entropy(logits, probs, weight=weight,
                                label_smoothing=self.label_smoothing, reduction="sum")
        return total / (probs @ weight).sum()  # torch's weighted mean for index targets


class BinaryCrossEntropy(ClassificationLoss):
    def compute(self, logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        margin = logits[:, 1] - logits[:, 0]  # [B]; sigmoid(margin) = softmax(logits)[:, 1]
        target = smooth(probs, self.label_smoothing)[:, 1]  # [B], P(class 1)
        weight = self.weights_on(logits.device)
        pos_weight = None if weight is None else weight[1] / weight[0]
        return F.binary_cross_entropy_with_logits(margin, target, pos_weight=pos_weight)


class MeanSquaredError(ClassificationLoss):
    uses_class_weights = False

    def compute(self, logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(logits.softmax(dim=-1), smooth(probs, self.label_smoothing))


class MeanAbsoluteError(ClassificationLoss):
    uses_class_weights = False

    def compute(self, logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(logits.softmax(dim=-1), smooth(probs, self.label_smoothing))


LOSSES: dict[str, Callable[..., ClassificationLoss]] = {
    "cross_entropy": CrossEntropy,
    "bce": BinaryCrossEntropy,
    "mse": MeanSquaredError,
    "l1": MeanAbsoluteError,
}


@settings_group
@dataclass(frozen=True)
class LossSettings:
    """The training objective (validation and test always log plain cross-entropy)."""

    loss: str = setting("cross_entropy", "training loss (bce: two classes only, on the margin "
                        "logit_1 - logit_0; mse, l1: on softmax probabilities vs one-hot "
                        "targets)", choices=LOSSES)
    label_smoothing: float = setting(0.0, "targets become (1 - eps) t + eps / K", low=0.0,
                                     high=1.0, high_inclusive=False)
    class_weights: list[float] | str | None = setting(
        None, "per-class loss weights: a list of num_classes positive numbers, or auto (N / "
        "(K n_c) from the training split, computed when fitting starts and saved in "
        "checkpoints); for bce [w0, w1] acts as pos_weight = w1 / w0", low=0.0,
        low_inclusive=False, none_means="unweighted",
        applies=("loss", tuple(name for name, kind in LOSSES.items()
                               if kind.uses_class_weights)))


def validate_loss(settings: LossSettings, num_classes: int) -> None:
    """Fail with one line on an unknown name or a setting the loss cannot take."""
    check_settings(settings)
    loss_class = LOSSES[settings.loss.lower()]
    class_weights = settings.class_weights
    if loss_class is BinaryCrossEntropy and num_classes != 2:
        raise ConfigError(f"loss 'bce' needs exactly 2 classes, but the data have {num_classes}"
                          f"; pick two with --data.classes [NAME,NAME]")
    if class_weights is None:
        return
    if isinstance(class_weights, str):
        if class_weights.lower() != AUTO_CLASS_WEIGHTS:
            raise ConfigError(f"class_weights={class_weights!r}: give a list of {num_classes} "
                              f"numbers, 'auto' (inverse class frequency) or null")
        return
    if len(class_weights) != num_classes:
        raise ConfigError(f"class_weights has {len(class_weights)} values but there are "
                          f"{num_classes} classes")


def build_loss(settings: LossSettings, num_classes: int) -> ClassificationLoss:
    """The loss `settings.loss`. With class_weights="auto" it waits for the caller to pass
    the weights computed from the training labels (`inverse_frequency_weights`) to
    `set_class_weights`, and refuses to run before."""
    validate_loss(settings, num_classes)
    class_weights = settings.class_weights
    weights = None
    if class_weights is not None and not isinstance(class_weights, str):
        weights = torch.tensor([float(value) for value in class_weights])
    return LOSSES[settings.loss.lower()](num_classes, settings.label_smoothing, weights,
                                         awaiting_class_weights=wants_auto_class_weights(
                                             class_weights))


def wants_auto_class_weights(class_weights: str | Sequence[float] | None) -> bool:
    return isinstance(class_weights, str) and class_weights.lower() == AUTO_CLASS_WEIGHTS
