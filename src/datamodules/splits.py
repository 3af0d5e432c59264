"""Stratified, seeded index splits: every class keeps its share (to within one image)."""

from collections.abc import Sequence

import torch

from src.core.errors import ConfigError, check_range


def _class_indices(labels: torch.Tensor,
                   generator: torch.Generator) -> list[tuple[int, torch.Tensor]]:
    """(label, indices of that label in a seeded random order) for each label, sorted."""
    per_class = []
    for label in torch.unique(labels, sorted=True).tolist():
        idx = (labels == label).nonzero().squeeze(1)
        per_class.append((label, idx[torch.randperm(len(idx), generator=generator)]))
    return per_class


def stratified_split(labels: torch.Tensor, fraction: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (rest, held_out) with round(fraction * n_c) held out per class.

    labels: [N] int64. Returns two sorted index tensors that partition range(N).
    """
    check_range("val_fraction", fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    generator = torch.Generator().manual_seed(seed)
    rest, held_out = [], []
    for _, idx in _class_indices(labels, generator):
        n_out = round(fraction * len(idx))
        held_out.append(idx[:n_out])
        rest.append(idx[n_out:])
    return torch.cat(rest).sort().values, torch.cat(held_out).sort().values


def stratified_subset(labels: torch.Tensor, *, fraction: float | None = None,
                      per_class: int | None = None, seed: int = 0,
                      class_names: list[str] | None = None) -> torch.Tensor:
    """Sorted indices of a class-balanced subset: a fraction of each class, or N per class."""
    if (fraction is None) == (per_class is None):
        raise ConfigError("give exactly one of subset_fraction and subset_per_class")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label, idx in _class_indices(labels, generator):
        if fraction is not None:
            check_range("subset_fraction", fraction, 0.0, 1.0, low_inclusive=False)
            n_keep = max(1, round(fraction * len(idx)))
        else:
            check_range("subset_per_class", per_class, 1)
            if per_class > len(idx):
                name = class_names[label] if class_names else str(label)
                raise ConfigError(
                    f"subset_per_class={per_class} exceeds the {len(idx)} training images of "
                    f"class {name!r}; choose at most {len(idx)}"
                )
            n_keep = per_class
        chosen.append(idx[:n_keep])
    return torch.cat(chosen).sort().values


def check_class_selection(selected: Sequence[str], known: Sequence[str] | None) -> None:
    """Fail with one line unless `selected` names >= 2 distinct classes, all in `known`.

    known: the data set's class names; None when they are not known yet (checked later).
    """
    if len(selected) < 2:
        raise ConfigError(f"classes={list(selected)} selects {len(selected)} class(es); "
                          f"a classifier needs at least 2")
    duplicates = sorted({name for name in selected if list(selected).count(name) > 1})
    if duplicates:
        raise ConfigError(f"classes lists {', '.join(duplicates)} more than once")
    if known is None:
        return
    for name in selected:
        if name not in known:
            raise ConfigError(f"unknown class {name!r}; the data set's classes are: "
                              f"{', '.join(known)}")


def class_subset_indices(labels: torch.Tensor,
                         keep: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose label is in `keep`, relabeled to their position in `keep`.

    labels: [N] int64. Returns (sorted indices [M] into labels, new labels [M] in 0..k-1).
    """
    num_source = int(labels.max()) + 1 if len(labels) else 0
    remap = torch.full((max(num_source, max(keep) + 1),), -1, dtype=torch.int64)
    remap[torch.tensor(list(keep))] = torch.arange(len(keep))
    new_labels = remap[labels]
    indices = (new_labels >= 0).nonzero().squeeze(1)
    return indices, new_labels[indices]


def imbalanced_subset(labels: torch.Tensor, ratio: float, seed: int) -> torch.Tensor:
    """Sorted indices keeping every image of class 0 and round(ratio * n_c) (at least 1)
    seeded-random images of every other class c."""
    check_range("imbalance_ratio", ratio, 0.0, 1.0, low_inclusive=False)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label, idx in _class_indices(labels, generator):
        n_keep = len(idx) if label == 0 else max(1, round(ratio * len(idx)))
        chosen.append(idx[:n_keep])
    return torch.cat(chosen).sort().values
