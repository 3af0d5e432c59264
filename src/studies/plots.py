"""The figure of a study: one panel per view, one line (or bar) per variant.

Panels are named in the study (`Study.panels`) and drawn from each variant's own logs.
Built on `matplotlib.figure.Figure` like src/reporting/plots.py (no pyplot, no display).
"""

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from src.core.errors import lookup
from src.reporting.plots import _save
from src.studies.columns import activation_stats_at_init
from src.studies.runner import VariantResult

Panel = Callable[[Axes, Sequence[VariantResult]], None]


def _colour(index: int, count: int):
    return colormaps["tab10"](index % 10) if count <= 10 else \
        colormaps["viridis"](index / max(1, count - 1))


def _finite(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(y)]


def _lines(axes: Axes, results: Sequence[VariantResult],
           points_of: Callable[[VariantResult], list[tuple[float, float]]],
           style: str = "-") -> None:
    for index, result in enumerate(results):
        points = _finite(points_of(result))
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, style, markersize=3, label=result.variant.label,
                      color=_colour(index, len(results)))
    axes.grid(alpha=0.3)


def _per_epoch(metric: str) -> Callable[[VariantResult], list[tuple[float, float]]]:
    def points(result: VariantResult) -> list[tuple[float, float]]:
        return [(p.epoch, p.value) for p in result.traces.get(metric, []) if p.epoch is not None]
    return points


def _epoch_axis(axes: Axes) -> None:
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def train_loss_per_step(axes: Axes, results: Sequence[VariantResult]) -> None:
    _lines(axes, results, lambda r: [(p.step, p.value)
                                     for p in r.traces.get("train/loss_step", [])])
    axes.set_yscale("log")
    # A diverging run would squash every other line: it leaves through the top instead.
    first = [points[0].value for r in results if (points := r.traces.get("train/loss_step"))
             and math.isfinite(points[0].value)]
    if first:
        axes.set_ylim(top=3 * max(first))
    axes.set_xlabel("optimizer step")
    axes.set_title("train loss (logged steps)")


def per_epoch_panel(metric: str, title: str) -> Panel:
    """A panel of one epoch-level metric, one line per variant."""
    def panel(axes: Axes, results: Sequence[VariantResult]) -> None:
        _lines(axes, results, _per_epoch(metric), "-o")
        _epoch_axis(axes)
        axes.set_title(title)
    return panel


def lr_per_epoch(axes: Axes, results: Sequence[VariantResult]) -> None:
    def points(result: VariantResult) -> list[tuple[float, float]]:
        # The LR monitor logs per step without an epoch: place its values by the number of
        # steps per epoch (the first epoch ends at the step its epoch values carry).
        ends = result.traces.get("train/loss_epoch", [])
        steps_per_epoch = ends[0].step + 1 if ends else 1
        name = next((name for name in result.traces if name.startswith("lr")), None)
        return [(p.step / steps_per_epoch, p.value) for p in result.traces.get(name, [])]
    _lines(axes, results, points)
    axes.set_xlabel("epoch")
    axes.set_title("learning rate")


def seconds_per_epoch(axes: Axes, results: Sequence[VariantResult]) -> None:
    labels, values = [], []
    for result in results:
        points = result.traces.get("time/train_epoch_s", [])
        labels.append(result.variant.label)
        values.append(statistics.median(p.value for p in points) if points else 0.0)
    axes.bar(range(len(values)), values,
             color=[_colour(i, len(results)) for i in range(len(results))])
    axes.set_xticks(range(len(labels)))
    axes.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("seconds")
    axes.set_title("training time per epoch (median)")
    axes.grid(alpha=0.3, axis="y")


def activation_std_at_init(axes: Axes, results: Sequence[VariantResult]) -> None:
    _lines(axes, results, lambda r: [(int(row["layer_index"]), float(row["act_std"]))
                                     for row in activation_stats_at_init(r)], "-o")
    axes.set_yscale("log")
    axes.set_xlabel("hidden layer (activation), input -> output")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title("activation std at initialization (step 0)")


PANELS: dict[str, Panel] = {
    "train loss per step": train_loss_per_step,
    "train loss per epoch": per_epoch_panel("train/loss_epoch",
                                            "train loss (mean over each epoch)"),
    "val acc per epoch": per_epoch_panel("val/acc", "validation accuracy"),
    "train acc per epoch": per_epoch_panel("train/acc",
                                           "train accuracy (training mode, augmented)"),
    "lr per epoch": lr_per_epoch,
    "seconds per epoch": seconds_per_epoch,
    "activation std at init": activation_std_at_init,
}


def plot_study(results: Sequence[VariantResult], panels: Sequence[str], title: str,
               path: Path) -> Path:
    """One row of panels (two rows beyond three), one legend for the figure."""
    draw = [lookup(PANELS, name, "study plot panel") for name in panels]
    columns = min(3, len(draw))
    rows = math.ceil(len(draw) / columns)
    figure = Figure(figsize=(5.2 * columns, 4 * rows + 0.8), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    all_axes = [axes for row in grid for axes in row]
    for axes, panel in zip(all_axes, draw, strict=False):
        panel(axes, results)
    for axes in all_axes[len(draw):]:
        axes.set_visible(False)
    handles, labels = all_axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = next((axes.get_legend_handles_labels() for axes in all_axes
                                if axes.get_legend_handles_labels()[0]), ([], []))
    if handles:
        figure.legend(handles, labels, loc="outside lower center",
                      ncol=min(len(labels), 6), fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)
