"""Every PNG figure of the project, in one module: data, sanity checks, learning curves,
the LR range test, evaluation, and the studies' panels.

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot: no
global figure state, no GUI backend (PNG files are rendered by Agg), safe in callbacks
and on machines without a display.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_sample_grid(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                     per_class: int, path: Path, seed: int = 0) -> Path:
    """One row per class of `per_class` images drawn at random (seeded) from that class.

    images: [N, C, H, W] uint8; labels: [N] int64.
    """
    generator = torch.Generator().manual_seed(seed)
    _, channels, height, width = images.shape
    rows = []
    for label in range(len(classes)):
        idx = (labels == label).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=generator)[:per_class]]
        row = torch.zeros(per_class, channels, height, width, dtype=torch.uint8)
        row[:len(idx)] = images[idx]  # classes with fewer images keep black tiles
        rows.append(row)
    padding = 2
    grid = make_grid(torch.cat(rows), nrow=per_class, padding=padding, pad_value=255)
    figure = Figure(figsize=(max(4.0, 0.8 * per_class), max(3.0, 0.8 * len(classes))))
    axes = figure.subplots()
    axes.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    axes.set_yticks([padding + (height + padding) * r + height / 2 for r in range(len(classes))])
    axes.set_yticklabels(classes)
    axes.set_xticks([])
    axes.set_title(f"{per_class} random training images per class")
    return _save(figure, path)


def plot_class_histogram(counts: Mapping[str, Sequence[int]], classes: Sequence[str],
                         path: Path) -> Path:
    """Grouped bars: images per class in each split; counts: split name -> [K] counts."""
    figure = Figure(figsize=(max(6.0, 0.6 * len(classes) * max(1, len(counts))), 4))
    axes = figure.subplots()
    bar_width = 0.8 / max(1, len(counts))
    for offset, (split, split_counts) in enumerate(counts.items()):
        positions = [k + (offset - (len(counts) - 1) / 2) * bar_width
                     for k in range(len(classes))]
        axes.bar(positions, list(split_counts), width=bar_width, label=split)
    axes.set_xticks(range(len(classes)))
    axes.set_xticklabels(classes, rotation=45, ha="right")
    axes.set_ylabel("images")
    axes.set_title("Class distribution")
    axes.legend()
    return _save(figure, path)


def plot_confusion_matrix(confusion: torch.Tensor, classes: Sequence[str], path: Path,
                          title: str = "Confusion matrix") -> Path:
    """confusion: [K, K] counts, rows = true class, columns = predicted class.

    Colours show each row as a fraction of that class (so rare classes stay visible);
    the numbers are the counts.
    """
    confusion = confusion.detach().cpu().to(torch.int64)
    row_fraction = confusion / confusion.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(4.0, 0.55 * len(classes) + 2)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.subplots()
    image = axes.imshow(row_fraction.numpy(), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    if len(classes) <= 20:  # numbers stay readable
        for true in range(len(classes)):
            for predicted in range(len(classes)):
                dark = row_fraction[true, predicted] > 0.5
                axes.text(predicted, true, str(int(confusion[true, predicted])), ha="center",
                          va="center", fontsize=7, color="white" if dark else "black")
    axes.set_xticks(range(len(classes)))
    axes.set_xticklabels(classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)))
    axes.set_yticklabels(classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    return _save(figure, path)


def plot_learning_curves(history: Sequence[Mapping[str, float]], path: Path,
                         title: str = "Learning curves") -> Path:
    """Loss and accuracy per epoch, training and validation side by side.

    history: one mapping per epoch with "epoch" and any of train_loss, val_loss,
    train_acc, val_acc (missing or NaN values are skipped).
    """
    # Constrained layout makes room for the two-line title above the panels' own titles.
    figure = Figure(figsize=(10, 4.6), layout="constrained")
    loss_axes, acc_axes = figure.subplots(1, 2)
    for axes, metric in ((loss_axes, "loss"), (acc_axes, "acc")):
        for split, style in (("train", "-o"), ("val", "-s")):
            points = [(row["epoch"], row[f"{split}_{metric}"]) for row in history
                      if row.get(f"{split}_{metric}") is not None
                      and not math.isnan(row[f"{split}_{metric}"])]
            if points:
                epochs, values = zip(*points, strict=True)
                axes.plot(epochs, values, style, markersize=3, label=split)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(metric if metric == "loss" else "accuracy")
        axes.grid(alpha=0.3)
        axes.legend()
    loss_axes.set_title("loss")
    acc_axes.set_title("accuracy")
    figure.suptitle(f"{title}\ntrain: mean over the epoch's batches (training mode, augmented);"
                    f" val: at the end of the epoch", fontsize=10)
    return _save(figure, path)


def plot_activation_stats(records: Sequence[Mapping[str, float | int | str]],
                          histograms: Mapping[int, Sequence[tuple[str, torch.Tensor, float,
                                                                  float]]],
                          path: Path, max_lines: int = 6) -> Path:
    """Per-layer activation statistics by depth, one line per sampled step.

    records: rows with step, layer_index, layer, act_std, grad_std, inactive (fraction
    of dead ReLU units or saturated tanh/sigmoid values; NaN for other activations).
    histograms: step -> [(layer, counts [bins], low, high)] for a few steps.
    max_lines: at most this many sampled steps are drawn, evenly spread, first and last
    included.
    """
    sampled = sorted({int(row["step"]) for row in records})
    picks = sorted({round(i * (len(sampled) - 1) / max(1, max_lines - 1))
                    for i in range(min(max_lines, len(sampled)))})
    steps = [sampled[i] for i in picks]
    layer_names = {int(row["layer_index"]): str(row["layer"]) for row in records}
    figure = Figure(figsize=(15, 9), layout="constrained")
    grid = figure.subplots(2, 2)
    panels = (
        (grid[0][0], "act_std", "activation std", False),
        (grid[0][1], "grad_std", "gradient std (w.r.t. the activation)", True),
        (grid[1][0], "inactive", "dead ReLU units / saturated tanh, sigmoid", False),
    )
    colours = [(i / max(1, len(steps) - 1)) for i in range(len(steps))]
    for axes, key, label, log_scale in panels:
        for step, colour in zip(steps, colours, strict=True):
            rows = sorted((row for row in records if row["step"] == step),
                          key=lambda row: row["layer_index"])
            points = [(row["layer_index"], row[key]) for row in rows
                      if not math.isnan(float(row[key]))]
            if log_scale:
                points = [(x, y) for x, y in points if y > 0]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, "-o", markersize=3, color=colormaps["viridis"](colour),
                          label=f"step {step}")
        if log_scale:
            axes.set_yscale("log")
        if key == "inactive":
            axes.set_ylim(-0.02, 1.02)
        if len(layer_names) <= 12:
            axes.set_xticks(sorted(layer_names))
            axes.set_xticklabels([layer_names[i] for i in sorted(layer_names)], rotation=30,
                                 ha="right", fontsize=8)
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("activation layer, input -> output")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    hist_axes = grid[1][1]
    if histograms:
        first = min(histograms)
        layers = histograms[first]
        for index, (layer, counts, low, high) in enumerate(layers):
            centres = torch.linspace(low, high, len(counts) + 1)
            centres = ((centres[:-1] + centres[1:]) / 2).tolist()
            density = (counts / counts.sum().clamp_min(1)).tolist()
            labelled = len(layers) <= 8 or index in (0, len(layers) - 1)
            hist_axes.plot(centres, density,
                           color=colormaps["viridis"](index / max(1, len(layers) - 1)),
                           label=layer if labelled else None)
        hist_axes.set_yscale("log")
        hist_axes.set_title(f"activation histograms at step {first} (dark: first layer)")
        hist_axes.set_xlabel("activation value")
        hist_axes.set_ylabel("fraction of values")
        hist_axes.legend(fontsize=7)
    figure.suptitle("Activation and gradient statistics by layer")
    return _save(figure, path)


def plot_lr_curve(lrs: list[float], losses: list[float], suggestion: float,
                  path: Path) -> Path:
    """Smoothed training loss against learning rate (log axis), the suggestion marked."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(lrs, losses)
    axes.axvline(suggestion, color="tab:red", linestyle="--",
                 label=f"suggestion {suggestion:.3g}")
    axes.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)",
             title="Learning-rate range test")
    axes.legend()
    return _save(figure, path)


@dataclass
class Panel:
    """One panel of a comparison figure: a line per series, or one bar per series."""

    title: str
    lines: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)
    bars: list[tuple[str, float]] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    style: str = "-"
    log_y: bool = False
    integer_x: bool = False
    top: float | None = None  # upper y limit (a diverging run leaves through the top)


def _colour(index: int, count: int):
    return colormaps["tab10"](index % 10) if count <= 10 else \
        colormaps["viridis"](index / max(1, count - 1))


def _draw_panel(axes, panel: Panel) -> None:
    count = max(len(panel.lines), len(panel.bars))
    for index, (label, points) in enumerate(panel.lines):
        points = [(x, y) for x, y in points if math.isfinite(y)]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, panel.style, markersize=3, label=label,
                      color=_colour(index, count))
    if panel.bars:
        labels, values = zip(*panel.bars, strict=True)
        axes.bar(range(len(values)), values, color=[_colour(i, count) for i in range(count)])
        axes.set_xticks(range(len(labels)))
        axes.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    if panel.log_y:
        axes.set_yscale("log")
    if panel.top is not None:
        axes.set_ylim(top=panel.top)
    if panel.integer_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
    axes.grid(alpha=0.3, axis="y" if panel.bars else "both")


def plot_panels(panels: Sequence[Panel], title: str, path: Path) -> Path:
    """Panels side by side (two rows beyond three), one legend for the whole figure."""
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.2 * columns, 4 * rows + 0.8), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    all_axes = [axes for row in grid for axes in row]
    for axes, panel in zip(all_axes, panels, strict=False):
        _draw_panel(axes, panel)
    for axes in all_axes[len(panels):]:
        axes.set_visible(False)
    handles, labels = next((axes.get_legend_handles_labels() for axes in all_axes
                            if axes.get_legend_handles_labels()[0]), ([], []))
    if handles:
        figure.legend(handles, labels, loc="outside lower center",
                      ncol=min(len(labels), 6), fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)
